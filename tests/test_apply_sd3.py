"""apply_long_clip on SD3 / SD3.5 pipelines: Long-CLIP-L with its projection in ``text_encoder``,
the OpenCLIP bigG ``text_encoder_2`` stretched, T5 (``text_encoder_3``) untouched. The CLIP part of
``prompt_embeds`` is 248 rows, both CLIPs' penultimate layers side by side, zero-padded to T5's
width; the pooled vector is both projections concatenated (docs/sd3-flux.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusion3Img2ImgPipeline, StableDiffusion3InpaintPipeline, StableDiffusion3Pipeline
from pipeline_helpers import IMAGE, T5_TOKENS, sd3_embeds, tail_prompts, words

from longclip_diffusers import apply_long_clip, long_clip_pair
from longclip_diffusers.compat import text_transformer
from longclip_diffusers.tiny import (
    tiny_long_clip_encoder,
    tiny_sd3_pipeline,
    tiny_tulip_text_encoder,
)


@pytest.fixture
def pipe():
    return tiny_sd3_pipeline()


def _long_clip():
    return tiny_long_clip_encoder(with_projection=True)


def _by_hand(pipe, prompt: str, clip_skip: int = 0):
    """SD3's conditioning computed here from the encoders: hidden layer -(2 + clip_skip) of both
    CLIPs at 248 tokens side by side, zero-padded to T5's width, then T5's tokens; pooled = both
    projections."""
    layers, pooled = [], []
    with torch.no_grad():
        for tokenizer, encoder in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
            ids = tokenizer(prompt, padding="max_length", max_length=248, truncation=True, return_tensors="pt")
            output = encoder(ids.input_ids, output_hidden_states=True)
            layers.append(output.hidden_states[-(2 + clip_skip)])
            pooled.append(output.text_embeds)
        t5_ids = pipe.tokenizer_3(
            prompt, padding="max_length", max_length=T5_TOKENS, truncation=True, return_tensors="pt"
        ).input_ids
        t5 = pipe.text_encoder_3(t5_ids)[0]
    clip = torch.cat(layers, dim=-1)
    clip = torch.cat([clip, clip.new_zeros(*clip.shape[:2], t5.shape[-1] - clip.shape[-1])], dim=-1)
    return torch.cat([clip, t5], dim=1), torch.cat(pooled, dim=-1)


def test_the_clip_part_of_prompt_embeds_is_248_rows_of_both_clips_as_computed_by_hand(pipe, long_prompt):
    t5, t5_tokenizer = pipe.text_encoder_3, pipe.tokenizer_3
    apply_long_clip(pipe, _long_clip())
    assert pipe.tokenizer.model_max_length == pipe.tokenizer_2.model_max_length == pipe.tokenizer_max_length == 248
    assert pipe.text_encoder_3 is t5 and pipe.tokenizer_3 is t5_tokenizer
    embeds, pooled = sd3_embeds(pipe, long_prompt)
    assert embeds.shape == (1, 248 + T5_TOKENS, 96) and pooled.shape == (1, 64)
    assert torch.count_nonzero(embeds[:, :248, 64:]) == 0  # the padding up to T5's width
    expected_embeds, expected_pooled = _by_hand(pipe, long_prompt)
    torch.testing.assert_close(embeds, expected_embeds)
    torch.testing.assert_close(pooled, expected_pooled)


def test_clip_skip_reads_the_layer_diffusers_reads(pipe, long_prompt):
    apply_long_clip(pipe, _long_clip())
    embeds, _ = sd3_embeds(pipe, long_prompt, clip_skip=1)
    torch.testing.assert_close(embeds, _by_hand(pipe, long_prompt, clip_skip=1)[0])


def test_a_word_at_token_150_changes_embeddings_and_pooled_only_after_apply(pipe):
    first, second = tail_prompts(count=200, same=150)
    for got, want in zip(sd3_embeds(pipe, first), sd3_embeds(pipe, second)):  # stock: the CLIPs cut at 77
        assert torch.equal(got[:, :77], want[:, :77])
    apply_long_clip(pipe, _long_clip())
    (embeds, pooled), (embeds_2, pooled_2) = sd3_embeds(pipe, first), sd3_embeds(pipe, second)
    assert not torch.allclose(embeds[:, :248], embeds_2[:, :248])
    assert not torch.allclose(pooled[:, :32], pooled_2[:, :32]) and not torch.allclose(
        pooled[:, 32:], pooled_2[:, 32:]
    )


def test_text_encoder_2_is_stretched_as_a_twin_and_the_stock_pipeline_stays_at_77(pipe, long_prompt):
    original = pipe.text_encoder_2
    table = text_transformer(original).embeddings.position_embedding.weight.detach().clone()
    before = sd3_embeds(pipe, long_prompt)
    stock, long = long_clip_pair(pipe, _long_clip())
    stretched = text_transformer(long.text_encoder_2).embeddings.position_embedding.weight
    assert long.text_encoder_2 is not original and stock.text_encoder_2 is original
    assert stretched.shape[0] == 248 and torch.equal(stretched[:20], table[:20])
    assert long.transformer is stock.transformer and long.text_encoder_3 is stock.text_encoder_3
    assert stock.tokenizer_max_length == stock.tokenizer_2.model_max_length == 77
    for got, want in zip(sd3_embeds(stock, long_prompt), before):
        assert torch.equal(got, want)
    assert sd3_embeds(stock, long_prompt)[0].shape == (1, 77 + T5_TOKENS, 96)


def test_short_prompt_pooled_vector_of_the_stretched_bigg_survives_stretching(pipe):
    prompt = "a red cat sits under a tree"  # under 20 tokens: rows 0-19 and causal attention
    _, before = sd3_embeds(pipe, prompt)
    apply_long_clip(pipe, _long_clip())
    _, after = sd3_embeds(pipe, prompt)
    torch.testing.assert_close(after[:, 32:], before[:, 32:])


def test_t5_keeps_its_max_sequence_length_default(pipe):
    apply_long_clip(pipe, _long_clip())
    embeds = pipe.encode_prompt("a red cat", None, None, device="cpu", do_classifier_free_guidance=False)[0]
    assert embeds.shape == (1, 248 + 256, 96)  # diffusers' default: 256
    assert sd3_embeds(pipe, "a red cat", max_sequence_length=40)[0].shape == (1, 248 + 40, 96)


def test_200_token_prompt_runs_end_to_end_with_guidance_and_other_tasks(pipe, long_prompt):
    apply_long_clip(pipe, _long_clip())
    image = pipe(long_prompt, negative_prompt="blurry", guidance_scale=5.0, **IMAGE).images[0]
    assert image.shape == (16, 16, 3) and np.isfinite(image).all()
    for cls in (StableDiffusion3InpaintPipeline, StableDiffusion3Img2ImgPipeline):
        variant = apply_long_clip(cls.from_pipe(tiny_sd3_pipeline()), _long_clip())
        assert sd3_embeds(variant, long_prompt)[0].shape == (1, 248 + T5_TOKENS, 96)
    image = variant(long_prompt, image=torch.rand(1, 3, 16, 16), strength=1.0, **IMAGE).images[0]
    assert np.isfinite(image).all()


def test_sd3_without_t5_is_patched_too(pipe, long_prompt):
    no_t5 = StableDiffusion3Pipeline(**{**pipe.components, "text_encoder_3": None, "tokenizer_3": None})
    apply_long_clip(no_t5, _long_clip())
    embeds, _ = sd3_embeds(no_t5, long_prompt)
    assert embeds.shape == (1, 248 + T5_TOKENS, 96)
    assert torch.count_nonzero(embeds[:, 248:]) == 0  # diffusers' zeros in place of T5


def test_saved_patched_pipeline_reloads_with_248_tokens_and_takes_apply_without_a_source(pipe, tmp_path, long_prompt):
    apply_long_clip(pipe, _long_clip())
    expected = sd3_embeds(pipe, long_prompt)
    pipe.save_pretrained(tmp_path / "long")
    reloaded = StableDiffusion3Pipeline.from_pretrained(tmp_path / "long")
    assert reloaded.tokenizer_max_length == 248
    apply_long_clip(reloaded)
    for got, want in zip(sd3_embeds(reloaded, long_prompt), expected):
        torch.testing.assert_close(got, want)


def test_words_past_248_are_named_in_a_warning(pipe):
    apply_long_clip(pipe, _long_clip())
    with pytest.warns(UserWarning, match="these 54 words are dropped") as caught:
        sd3_embeds(pipe, " ".join(words(300)))
    assert " ".join(words(300)[246:]) in str(caught[0].message)
    assert "T5 (text_encoder_3) still reads them" in str(caught[0].message)


def test_tulip_with_projection_reads_300_tokens_and_text_encoder_2_is_stretched_to_match(pipe):
    tulip = tiny_tulip_text_encoder(with_projection=True)
    apply_long_clip(pipe, tulip, max_length=300)
    assert pipe.tokenizer_max_length == pipe.tokenizer_2.model_max_length == 300
    assert text_transformer(pipe.text_encoder_2).embeddings.position_embedding.num_embeddings == 300
    first, second = tail_prompts(count=290, same=260)
    (embeds, pooled), (embeds_2, pooled_2) = sd3_embeds(pipe, first), sd3_embeds(pipe, second)
    assert embeds.shape == (1, 300 + T5_TOKENS, 96)
    assert not torch.allclose(embeds[:, 261:292], embeds_2[:, 261:292])
    assert not torch.allclose(pooled, pooled_2)
