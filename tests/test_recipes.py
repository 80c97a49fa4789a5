"""Embedding recipes and clip_skip, checked against direct calls of the encoders."""

from __future__ import annotations

import pytest
import torch
from pipeline_helpers import sd_embeds, sdxl_embeds

from longclip_diffusers import apply_long_clip
from longclip_diffusers.compat import text_transformer
from longclip_diffusers.tiny import tiny_long_clip_encoder, tiny_sd_pipeline, tiny_sdxl_pipeline

PROMPT = "a red cat sits under a tree near a river at night with two small boats and a tower"


def _outputs(pipe, slot: str, prompt: str):
    tokenizer = getattr(pipe, slot.replace("text_encoder", "tokenizer"))
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        return getattr(pipe, slot)(ids, output_hidden_states=True)


def _final_norm(pipe, slot: str, hidden: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return text_transformer(getattr(pipe, slot)).final_layer_norm(hidden)


@pytest.fixture
def sdxl():
    return tiny_sdxl_pipeline()


def test_standard_sdxl_recipe_is_both_penultimate_layers_and_pooled_from_text_encoder_2(sdxl):
    apply_long_clip(sdxl, tiny_long_clip_encoder())
    first, second = _outputs(sdxl, "text_encoder", PROMPT), _outputs(sdxl, "text_encoder_2", PROMPT)
    embeds, pooled = sdxl_embeds(sdxl, PROMPT)
    torch.testing.assert_close(embeds, torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1))
    torch.testing.assert_close(pooled, second.text_embeds)


def test_longclip_recipe_is_both_last_layers_after_the_final_layer_norm(sdxl):
    apply_long_clip(sdxl, tiny_long_clip_encoder(), recipe="longclip")
    first, second = _outputs(sdxl, "text_encoder", PROMPT), _outputs(sdxl, "text_encoder_2", PROMPT)
    embeds, pooled = sdxl_embeds(sdxl, PROMPT)
    torch.testing.assert_close(embeds, torch.cat([first.last_hidden_state, second.last_hidden_state], dim=-1))
    torch.testing.assert_close(pooled, second.text_embeds)


def test_longclip_recipe_encodes_negative_prompts_the_same_way(sdxl):
    apply_long_clip(sdxl, tiny_long_clip_encoder(), recipe="longclip")
    negative = "dark blurry photo"
    _, negative_embeds, _, negative_pooled = sdxl.encode_prompt(
        PROMPT, device="cpu", do_classifier_free_guidance=True, negative_prompt=negative
    )
    first, second = _outputs(sdxl, "text_encoder", negative), _outputs(sdxl, "text_encoder_2", negative)
    torch.testing.assert_close(negative_embeds, torch.cat([first.last_hidden_state, second.last_hidden_state], dim=-1))
    torch.testing.assert_close(negative_pooled, second.text_embeds)


def test_longclip_recipe_keeps_zeroed_empty_negatives(sdxl):
    apply_long_clip(sdxl, tiny_long_clip_encoder(), recipe="longclip")
    _, negative_embeds, _, negative_pooled = sdxl.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=True)
    assert not negative_embeds.any() and not negative_pooled.any()


def test_longclip_recipe_clip_skip_normalises_an_earlier_layer(sdxl):
    apply_long_clip(sdxl, tiny_long_clip_encoder(), recipe="longclip")
    first, second = _outputs(sdxl, "text_encoder", PROMPT), _outputs(sdxl, "text_encoder_2", PROMPT)
    embeds, _ = sdxl_embeds(sdxl, PROMPT, clip_skip=2)
    expected = torch.cat(
        [
            _final_norm(sdxl, "text_encoder", first.hidden_states[-3]),
            _final_norm(sdxl, "text_encoder_2", second.hidden_states[-3]),
        ],
        dim=-1,
    )
    torch.testing.assert_close(embeds, expected)


def test_sdxl_pipeline_runs_with_the_longclip_recipe(sdxl):
    apply_long_clip(sdxl, tiny_long_clip_encoder(), recipe="longclip")
    latents = sdxl(
        PROMPT, negative_prompt="grey", num_inference_steps=2, height=64, width=64, output_type="latent"
    ).images
    assert latents.shape == (1, 4, 32, 32) and torch.isfinite(latents).all()


@pytest.mark.parametrize("clip_skip", [1, 2])
def test_sd_clip_skip_with_a_flat_long_clip_encoder_matches_the_direct_computation(clip_skip):
    pipe = tiny_sd_pipeline()
    apply_long_clip(pipe, tiny_long_clip_encoder())
    hidden = _outputs(pipe, "text_encoder", PROMPT).hidden_states[-(clip_skip + 1)]
    torch.testing.assert_close(sd_embeds(pipe, PROMPT, clip_skip=clip_skip), _final_norm(pipe, "text_encoder", hidden))
    latents = pipe(
        PROMPT, clip_skip=clip_skip, num_inference_steps=2, height=32, width=32, output_type="latent"
    ).images
    assert torch.isfinite(latents).all()


def test_sd_recipes_coincide_and_unknown_recipes_are_refused():
    standard, longclip = tiny_sd_pipeline(), tiny_sd_pipeline()
    apply_long_clip(standard, tiny_long_clip_encoder())
    apply_long_clip(longclip, tiny_long_clip_encoder(), recipe="longclip")
    torch.testing.assert_close(sd_embeds(standard, PROMPT), sd_embeds(longclip, PROMPT))
    with pytest.raises(ValueError, match="standard, longclip"):
        apply_long_clip(tiny_sd_pipeline(), tiny_long_clip_encoder(), recipe="last")
