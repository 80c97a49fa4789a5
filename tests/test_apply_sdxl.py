"""apply_long_clip on SDXL base and refiner: Long-CLIP-L in text_encoder, text_encoder_2 stretched
(a twin sharing the weights), both tokenizers at 248, pooled from the stretched text_encoder_2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLImg2ImgPipeline
from pipeline_helpers import sdxl_embeds, tail_prompts

from longclip_diffusers import apply_long_clip, long_clip_pair, stretch_text_encoder
from longclip_diffusers.compat import text_transformer
from longclip_diffusers.tiny import (
    tiny_long_clip_encoder,
    tiny_sdxl_pipeline,
    tiny_sdxl_refiner_pipeline,
    tiny_text_encoder,
)


@pytest.fixture
def pipe():
    return tiny_sdxl_pipeline()


def _positions(encoder) -> torch.Tensor:
    return text_transformer(encoder).embeddings.position_embedding.weight


def test_200_token_prompt_runs_end_to_end_with_pooled_from_text_encoder_2(pipe, long_prompt):
    apply_long_clip(pipe, tiny_long_clip_encoder())
    assert pipe.tokenizer.model_max_length == pipe.tokenizer_2.model_max_length == 248
    embeds, pooled = sdxl_embeds(pipe, long_prompt)
    assert embeds.shape == (1, 248, 64)
    ids = pipe.tokenizer_2(long_prompt, padding="max_length", max_length=248, return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(pooled, pipe.text_encoder_2(ids).text_embeds)
    image = pipe(long_prompt, num_inference_steps=2, height=64, width=64, output_type="np").images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()


def test_tokens_after_100_change_embeddings_and_pooled_only_after_apply(pipe):
    first, second = tail_prompts()
    stock_first, stock_second = sdxl_embeds(pipe, first), sdxl_embeds(pipe, second)
    assert torch.equal(stock_first[0], stock_second[0]) and torch.equal(stock_first[1], stock_second[1])
    apply_long_clip(pipe, tiny_long_clip_encoder())
    (embeds, pooled), (embeds_2, pooled_2) = sdxl_embeds(pipe, first), sdxl_embeds(pipe, second)
    assert not torch.allclose(embeds, embeds_2)
    assert not torch.allclose(pooled, pooled_2)


def test_text_encoder_2_is_stretched_as_a_twin_keeping_rows_0_to_19_and_the_stock_encoder(pipe, long_prompt):
    original = pipe.text_encoder_2
    table = _positions(original).detach().clone()
    stock_before = sdxl_embeds(pipe, long_prompt)
    stock, long = long_clip_pair(pipe, tiny_long_clip_encoder())
    stretched = long.text_encoder_2
    assert stretched is not original and stock.text_encoder_2 is original
    assert _positions(stretched).shape[0] == 248
    assert torch.equal(_positions(stretched)[:20], table[:20])
    assert torch.equal(_positions(original), table)
    assert stretched.text_projection.weight.data_ptr() == original.text_projection.weight.data_ptr()
    assert stock.tokenizer_2.model_max_length == 77
    stock_after = sdxl_embeds(stock, long_prompt)
    assert torch.equal(stock_after[0], stock_before[0]) and torch.equal(stock_after[1], stock_before[1])


def test_short_prompt_pooled_vector_survives_stretching(pipe):
    prompt = "a red cat sits under a tree"  # under 20 tokens: rows 0-19 and causal attention
    _, before = sdxl_embeds(pipe, prompt)
    apply_long_clip(pipe, tiny_long_clip_encoder())
    _, after = sdxl_embeds(pipe, prompt)
    torch.testing.assert_close(after, before)


def test_refiner_gets_a_stretched_text_encoder_2_and_runs(long_prompt):
    refiner = tiny_sdxl_refiner_pipeline()
    apply_long_clip(refiner)
    assert _positions(refiner.text_encoder_2).shape[0] == 248
    assert refiner.tokenizer_2.model_max_length == 248
    embeds, pooled = sdxl_embeds(refiner, long_prompt)
    assert embeds.shape == (1, 248, 32) and pooled.shape == (1, 32)
    image = refiner(
        long_prompt, image=torch.rand(1, 3, 32, 32), num_inference_steps=2, strength=1.0, output_type="np"
    ).images[0]
    assert np.isfinite(image).all()


def test_longer_max_length_stretches_text_encoder_2_to_fit(pipe):
    encoder = stretch_text_encoder(tiny_text_encoder(seed=1), length=300)
    apply_long_clip(pipe, encoder, max_length=300)
    assert _positions(pipe.text_encoder_2).shape[0] == 300
    assert sdxl_embeds(pipe, "a cat")[0].shape == (1, 300, 64)


def test_a_pipeline_derived_from_a_patched_one_takes_apply_without_a_source(pipe, long_prompt):
    apply_long_clip(pipe, tiny_long_clip_encoder(), recipe="longclip")
    img2img = StableDiffusionXLImg2ImgPipeline.from_pipe(pipe)
    apply_long_clip(img2img, recipe="longclip")
    assert img2img.text_encoder is pipe.text_encoder and img2img.text_encoder_2 is pipe.text_encoder_2
    for got, want in zip(sdxl_embeds(img2img, long_prompt), sdxl_embeds(pipe, long_prompt)):
        torch.testing.assert_close(got, want)
