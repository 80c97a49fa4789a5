"""``longclip-diffusers eval retrieval``: a table on stdout, the same numbers in JSON."""

from __future__ import annotations

import json

import pytest
import torch
from eval_fixtures import save_tiny_clip, write_coco, write_urban1k

from longclip_diffusers import load_eval_model
from longclip_diffusers.cli.main import main
from longclip_diffusers.io.loading import CACHE_ENV
from longclip_diffusers.tiny import tiny_clip_tokenizer, tiny_openai_state_dict, tiny_tulip_state_dict


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("eval_cli") / "tiny-longclip")


def test_retrieval_prints_a_table_and_writes_the_same_numbers_as_json(tmp_path, model_dir, capsys):
    root = write_coco(
        tmp_path / "coco",
        [("red", ["a red car", "red door"]), ("green", ["a green tree"]), ("blue", ["blue sky"])],
    )
    out = tmp_path / "results" / "coco.json"
    code = main(
        [
            "eval",
            "retrieval",
            "--model",
            str(model_dir),
            "--dataset",
            "coco",
            "--root",
            str(root),
            "--json",
            str(out),
            "--batch-size",
            "2",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["dataset"] == "coco" and result["max_length"] == 248
    assert (result["num_images"], result["num_texts"]) == (3, 4)
    assert set(result["image_to_text"]) == {"R@1", "R@5", "R@10"}
    # 3 images: every image is within the top 5 of anything.
    assert result["text_to_image"]["R@5"] == 1.0
    stdout = capsys.readouterr().out
    i2t_row = next(line for line in stdout.splitlines() if line.strip().startswith("image->text"))
    expected = [f"{100 * result['image_to_text'][k]:.1f}" for k in ("R@1", "R@5", "R@10")]
    assert i2t_row.split()[1:] == expected
    assert f"wrote {out}" in stdout


def test_retrieval_on_a_wrong_root_fails_with_one_line_naming_the_layout(tmp_path, model_dir, capsys):
    code = main(["eval", "retrieval", "--model", str(model_dir), "--dataset", "urban1k", "--root", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "image/" in err and len(err.splitlines()) == 1


def test_a_text_only_model_is_refused_before_any_encoding(tmp_path, capsys):
    from longclip_diffusers.io.export import save_text_encoder
    from longclip_diffusers.tiny import tiny_clip_tokenizer, tiny_text_encoder

    text_only = save_text_encoder(tiny_text_encoder(), tmp_path / "text", tokenizer=tiny_clip_tokenizer())
    root = write_urban1k(tmp_path / "urban", [("red", "a red car")])
    code = main(["eval", "retrieval", "--model", str(text_only), "--dataset", "urban1k", "--root", str(root)])
    assert code == 1
    assert "vision tower" in capsys.readouterr().err


def test_eval_help_lists_the_three_tasks(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for task in ("retrieval", "zeroshot", "length-curve"):
        assert task in help_text


def test_a_released_checkpoint_file_is_evaluated_at_248_with_the_given_tokenizer(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    # Full CLIP vocabulary: a file carries no tokenizer, so it converts with CLIP's special ids.
    path = tmp_path / "longclip-tiny.pt"
    torch.save(tiny_openai_state_dict(vocab_size=49408), path)
    tokenizer_dir = tmp_path / "tokenizer"
    tiny_clip_tokenizer().save_pretrained(tokenizer_dir)
    root = write_urban1k(tmp_path / "urban", [("red", "a red car"), ("blue", "a blue boat")])
    args = ["eval", "retrieval", "--model", str(path), "--dataset", "urban1k", "--root", str(root)]
    out = tmp_path / "result.json"
    assert main(args + ["--tokenizer", str(tokenizer_dir), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["max_length"] == 248
    # Without --tokenizer the file needs CLIP-L's from the hub, which is offline here.
    assert main(args) == 1
    assert "openai/clip-vit-large-patch14" in capsys.readouterr().err


def test_a_plain_openai_clip_file_is_evaluated_as_clip_at_77_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path = tmp_path / "ViT-tiny.pt"
    state = tiny_openai_state_dict(vocab_size=49408, context=77, two_position_tables=False)
    torch.save(state, path)
    tokenizer_dir = tmp_path / "tokenizer"
    tiny_clip_tokenizer().save_pretrained(tokenizer_dir)
    root = write_urban1k(tmp_path / "urban", [("red", "a red car"), ("blue", "a blue boat")])
    out = tmp_path / "result.json"
    assert (
        main(
            [
                "eval",
                "retrieval",
                "--model",
                str(path),
                "--dataset",
                "urban1k",
                "--root",
                str(root),
                "--tokenizer",
                str(tokenizer_dir),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["max_length"] == 77
    model = load_eval_model(path, tokenizer=tokenizer_dir)
    assert model.tokenizer.model_max_length == 77
    table = model.model.text_model.embeddings.position_embedding.weight
    torch.testing.assert_close(table, state["positional_embedding"])


def test_a_tulip_model_reads_its_whole_context_in_retrieval(tmp_path, capsys):
    tokenizer_dir = tmp_path / "tokenizer"
    tiny_clip_tokenizer().save_pretrained(tokenizer_dir)
    checkpoint, model_dir = tmp_path / "tulip.pt", tmp_path / "tulip"
    torch.save(tiny_tulip_state_dict(with_vision=True), checkpoint)
    assert main(["convert", str(checkpoint), str(model_dir), "--tokenizer", str(tokenizer_dir)]) == 0
    root = write_urban1k(tmp_path / "urban", [("red", "a red car"), ("blue", "a blue boat")])
    out = tmp_path / "result.json"
    assert (
        main(
            [
                "eval",
                "retrieval",
                "--model",
                str(model_dir),
                "--dataset",
                "urban1k",
                "--root",
                str(root),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["max_length"] == 248
    model = load_eval_model(model_dir)
    assert type(model.model).__name__ == "TulipModel"
    words = ["red"] * 100
    texts = [" ".join(words), " ".join(words[:90] + ["blue"] * 10)]
    full = model.encode_texts(texts, progress=False)
    cut = model.encode_texts(texts, max_length=77, progress=False)
    assert not torch.allclose(full[0], full[1])
    torch.testing.assert_close(cut[0], cut[1])


def test_bfloat16_weights_get_matching_pixel_inputs_and_float_results(tmp_path, model_dir):
    root = write_urban1k(tmp_path / "urban", [("red", "a red car"), ("blue", "a blue boat")])
    assert (
        main(
            [
                "eval",
                "retrieval",
                "--model",
                str(model_dir),
                "--dataset",
                "urban1k",
                "--root",
                str(root),
                "--dtype",
                "bfloat16",
            ]
        )
        == 0
    )
    model = load_eval_model(model_dir, torch_dtype="bfloat16")
    assert model.model.dtype == torch.bfloat16
    images = model.encode_images(sorted((root / "image").iterdir()), progress=False)
    texts = model.encode_texts(["a red car"], progress=False)
    assert images.dtype == texts.dtype == torch.float32
    torch.testing.assert_close(images.norm(dim=-1), torch.ones(2))
