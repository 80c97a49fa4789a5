"""Past 248 tokens: the pipeline warns with the dropped words; compel chunks at 248 with its
weighting syntax on a patched pipeline, and its embeddings drive the pipeline."""

from __future__ import annotations

import pytest
import torch
from compel import CompelForSD, CompelForSDXL
from pipeline_helpers import sd_embeds, words

from longclip_diffusers import apply_long_clip
from longclip_diffusers.tiny import tiny_long_clip_encoder, tiny_sd_pipeline, tiny_sdxl_pipeline

PAST_248 = " ".join(words(300))


def test_words_past_248_are_named_in_a_warning():
    pipe = apply_long_clip(tiny_sd_pipeline(), tiny_long_clip_encoder())
    with pytest.warns(UserWarning, match="these 54 words are dropped") as caught:
        sd_embeds(pipe, PAST_248)
    assert " ".join(words(300)[246:]) in str(caught[0].message)


def test_compel_for_sd_chunks_at_248_and_weights_change_the_embeddings():
    pipe = apply_long_clip(tiny_sd_pipeline(), tiny_long_clip_encoder())
    compel = CompelForSD(pipe)
    plain = compel(PAST_248, negative_prompt="grey")
    weighted = compel("(red cat)1.5 " + PAST_248, negative_prompt="grey")
    assert plain.embeds.shape == (1, 2 * 248, 32)
    assert plain.negative_embeds.shape == plain.embeds.shape
    assert not torch.allclose(weighted.embeds, compel("red cat " + PAST_248).embeds)
    latents = pipe(
        prompt_embeds=plain.embeds,
        negative_prompt_embeds=plain.negative_embeds,
        num_inference_steps=2,
        height=32,
        width=32,
        output_type="latent",
    ).images
    assert torch.isfinite(latents).all()


def test_compel_for_sdxl_chunks_at_248_with_pooled_from_text_encoder_2():
    pipe = apply_long_clip(tiny_sdxl_pipeline(), tiny_long_clip_encoder())
    conditioning = CompelForSDXL(pipe)("a (red cat)1.3 " + PAST_248, negative_prompt="grey")
    assert conditioning.embeds.shape == (1, 2 * 248, 64)
    assert conditioning.pooled_embeds.shape == (1, 32)
    latents = pipe(
        prompt_embeds=conditioning.embeds,
        pooled_prompt_embeds=conditioning.pooled_embeds,
        negative_prompt_embeds=conditioning.negative_embeds,
        negative_pooled_prompt_embeds=conditioning.negative_pooled_embeds,
        num_inference_steps=2,
        height=64,
        width=64,
        output_type="latent",
    ).images
    assert torch.isfinite(latents).all()
