"""apply_long_clip refuses what cannot work, with the reason, and leaves the pipeline exactly as
it was: same component objects, same weights, same tokenizer settings (and Flux's and SD3's
``tokenizer_max_length``), no patched encode_prompt. SD1.x, SDXL, Flux.1 and SD3 alike."""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxPipeline, StableDiffusionPipeline

from longclip_diffusers import IncompatibleEncoderError, apply_long_clip, stretch_text_encoder
from longclip_diffusers.drop_in import encode_prompt as prompt_encoding
from longclip_diffusers.tiny import (
    tiny_flux_pipeline,
    tiny_long_clip_encoder,
    tiny_sd3_pipeline,
    tiny_sd_pipeline,
    tiny_sdxl_pipeline,
    tiny_text_encoder,
)

SLOTS = ("text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "tokenizer_2", "tokenizer_3")


def _snapshot(pipe) -> dict:
    state = {"encode_prompt": "encode_prompt" in pipe.__dict__}
    if "tokenizer_max_length" in pipe.__dict__:
        state["tokenizer_max_length"] = pipe.tokenizer_max_length
    for slot in SLOTS:
        component = getattr(pipe, slot, None)
        if component is None:
            continue
        state[slot] = component
        if isinstance(component, torch.nn.Module):
            state[f"{slot} weights"] = {k: v.clone() for k, v in component.state_dict().items()}
            state[f"{slot} config"] = component.config.to_dict()
        else:
            state[f"{slot} settings"] = (component.model_max_length, len(component))
    return state


def _assert_unchanged(pipe, before: dict) -> None:
    after = _snapshot(pipe)
    assert after.keys() == before.keys()
    for key, value in before.items():
        if key.endswith("weights"):
            assert after[key].keys() == value.keys()
            assert all(torch.equal(after[key][name], tensor) for name, tensor in value.items()), key
        elif key in SLOTS:
            assert after[key] is value, key
        else:
            assert after[key] == value, key


@pytest.fixture(
    params=[tiny_sd_pipeline, tiny_sdxl_pipeline, tiny_flux_pipeline, tiny_sd3_pipeline],
    ids=["sd", "sdxl", "flux", "sd3"],
)
def pipe(request):
    return request.param()


def _projection(pipe) -> bool:
    """Whether the pipeline's CLIP-L slot has a text projection (SD3's has)."""
    return hasattr(pipe.text_encoder, "text_projection")


def _long_clip(pipe, **options):
    """A tiny Long-CLIP encoder that fits ``pipe``'s CLIP-L slot."""
    return tiny_long_clip_encoder(with_projection=_projection(pipe), **options)


def _refused(pipe, source, match, error=IncompatibleEncoderError, **options):
    before = _snapshot(pipe)
    with pytest.raises(error, match=match):
        apply_long_clip(pipe, source, **options)
    _assert_unchanged(pipe, before)


def test_encoder_of_the_wrong_width_is_refused_naming_both_widths(pipe):
    wide = stretch_text_encoder(tiny_text_encoder(_projection(pipe), seed=1, hidden_size=64))
    _refused(pipe, wide, "64 wide but text_encoder .* is 32 wide")


def test_encoder_with_77_positions_is_refused(pipe):
    _refused(pipe, tiny_text_encoder(_projection(pipe), seed=1), "77 positions, fewer than max_length=248")


def test_encoder_whose_projection_does_not_match_the_clip_l_slot_is_refused(pipe):
    other = stretch_text_encoder(tiny_text_encoder(not _projection(pipe), seed=1))
    _refused(pipe, other, "encoder with projection" if _projection(pipe) else "encoder without projection")


def test_encoder_projecting_to_another_width_is_refused_for_sd3():
    narrow = _long_clip(tiny_sd3_pipeline(), projection_dim=16)
    _refused(tiny_sd3_pipeline(), narrow, "projects to 16 features but text_encoder .* to 32")


def test_the_longclip_recipe_is_refused_for_sd3_naming_the_standard_one():
    pipe = tiny_sd3_pipeline()
    _refused(pipe, _long_clip(pipe), "SD3 pipelines take recipe='standard'", recipe="longclip")


def test_a_t5_only_pipeline_is_refused_as_having_no_clip_encoder():
    components = tiny_flux_pipeline().components
    pipe = FluxPipeline(**{**components, "text_encoder": None, "tokenizer": None})
    _refused(pipe, tiny_long_clip_encoder(), "has no CLIP text encoder")


def test_missing_source_is_refused_for_a_77_token_slot(pipe):
    _refused(pipe, None, "no Long-CLIP source")


def test_unknown_source_path_is_refused(pipe, tmp_path):
    _refused(pipe, str(tmp_path / "missing"), "does not exist", error=FileNotFoundError)


def test_unknown_recipe_is_refused(pipe):
    _refused(pipe, _long_clip(pipe), "unknown recipe", error=ValueError, recipe="best")


def test_applying_twice_is_refused_and_the_first_application_stays(pipe):
    apply_long_clip(pipe, _long_clip(pipe))
    _refused(pipe, _long_clip(pipe), "already has Long-CLIP")


def test_textual_inversion_tokens_loaded_before_are_refused():
    pipe = tiny_sd_pipeline()
    pipe.load_textual_inversion(torch.randn(1, 32), token="<style>")
    _refused(pipe, tiny_long_clip_encoder(), "call apply_long_clip before load_textual_inversion")


def test_pipeline_without_a_text_encoder_is_refused():
    components = tiny_sd_pipeline().components
    pipe = StableDiffusionPipeline(**{**components, "text_encoder": None, "tokenizer": None})
    _refused(pipe, tiny_long_clip_encoder(), "has no CLIP text encoder")


def test_a_failure_while_swapping_puts_every_component_back(pipe, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(prompt_encoding.LongClipPromptEncoder, "__init__", broken)
    _refused(pipe, _long_clip(pipe), "simulated failure", error=RuntimeError)
    assert pipe.config.text_encoder == ("transformers", type(pipe.text_encoder).__name__)


def test_a_failed_swap_leaves_the_callers_encoder_in_its_own_dtype(pipe, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    encoder = _long_clip(pipe).to(torch.float64)
    weights = {k: v.clone() for k, v in encoder.state_dict().items()}
    monkeypatch.setattr(prompt_encoding.LongClipPromptEncoder, "__init__", broken)
    _refused(pipe, encoder, "simulated failure", error=RuntimeError)
    assert all(p.dtype == torch.float64 for p in encoder.parameters())
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in weights.items())


def test_a_successful_swap_casts_a_twin_not_the_callers_encoder(pipe):
    encoder = _long_clip(pipe).to(torch.float64)
    apply_long_clip(pipe, encoder)
    assert pipe.text_encoder.dtype == torch.float32
    assert encoder.dtype == torch.float64
