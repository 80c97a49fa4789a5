"""Retrieval end to end: data folder -> features -> recall, with a model whose answers are known."""

from __future__ import annotations

import torch
from eval_fixtures import colour_eval_model, save_tiny_clip, write_coco, write_urban1k

from longclip_diffusers import evaluate_retrieval, load_eval_model, load_retrieval_dataset
from longclip_diffusers.evaluation import encode_texts


def test_urban1k_pairs_are_all_found_first_both_ways(tmp_path):
    root = write_urban1k(tmp_path, [("green", "a green field"), ("red", "a red car"), ("blue", "the blue sky")])
    result = evaluate_retrieval(
        colour_eval_model(), load_retrieval_dataset("urban1k", root), batch_size=2, progress=False
    )
    assert result["image_to_text"]["R@1"] == 1.0
    assert result["text_to_image"]["R@1"] == 1.0
    assert (result["num_images"], result["num_texts"], result["max_length"]) == (3, 3, 77)


def test_captions_swapped_between_images_are_all_missed(tmp_path):
    root = write_urban1k(tmp_path, [("green", "a red car"), ("red", "a blue sky"), ("blue", "a green field")])
    result = evaluate_retrieval(colour_eval_model(), load_retrieval_dataset("urban1k", root), progress=False)
    assert result["image_to_text"]["R@1"] == 0.0
    assert result["text_to_image"]["R@1"] == 0.0


def test_several_captions_per_image_keep_their_owner(tmp_path):
    root = write_coco(
        tmp_path,
        [
            ("blue", ["a blue boat", "the blue river", "blue sky"]),
            ("red", ["a red house", "red flower", "the red door"]),
        ],
    )
    result = evaluate_retrieval(
        colour_eval_model(), load_retrieval_dataset("coco", root), batch_size=4, progress=False
    )
    assert result["num_texts"] == 6
    assert result["image_to_text"]["R@1"] == 1.0
    assert result["text_to_image"]["R@1"] == 1.0


def test_a_long_clip_model_reads_captions_past_77_tokens(tmp_path, long_prompt):
    model = load_eval_model(save_tiny_clip(tmp_path / "model"))
    assert model.max_length == 248
    words = long_prompt.split()
    same_start = [" ".join(words[:150]), " ".join(words[:100] + ["red"] * 50)]
    full = encode_texts(model.model, model.tokenizer, same_start, progress=False)
    cut = encode_texts(model.model, model.tokenizer, same_start, max_length=77, progress=False)
    assert not torch.allclose(full[0], full[1])
    torch.testing.assert_close(cut[0], cut[1])
