"""Pipelines are classified by the text encoders they hold, whatever their class: SD1.x, SDXL,
the refiner, Flux.1 and SD3 (with or without T5); and the same from a saved folder's
``model_index.json`` before anything is loaded."""

from __future__ import annotations

import json

import pytest
from diffusers import FluxPipeline, StableDiffusion3Pipeline

from longclip_diffusers import IncompatibleEncoderError
from longclip_diffusers.drop_in.pipeline_kinds import detect_slots, slots_from_model_index
from longclip_diffusers.tiny import (
    tiny_flux_pipeline,
    tiny_sd3_pipeline,
    tiny_sd_pipeline,
    tiny_sdxl_pipeline,
    tiny_sdxl_refiner_pipeline,
    tiny_text_encoder,
)

#: kind -> (Long-CLIP slot, stretched slot, T5 slot, CLIP tokenizers)
EXPECTED = {
    "sd": ("text_encoder", None, None, ("tokenizer",)),
    "sdxl": ("text_encoder", "text_encoder_2", None, ("tokenizer", "tokenizer_2")),
    "refiner": (None, "text_encoder_2", None, ("tokenizer_2",)),
    "flux": ("text_encoder", None, "text_encoder_2", ("tokenizer",)),
    "sd3": ("text_encoder", "text_encoder_2", "text_encoder_3", ("tokenizer", "tokenizer_2")),
}
BUILDERS = {
    "sd": tiny_sd_pipeline,
    "sdxl": tiny_sdxl_pipeline,
    "refiner": tiny_sdxl_refiner_pipeline,
    "flux": tiny_flux_pipeline,
    "sd3": tiny_sd3_pipeline,
}


def _described(slots):
    return slots.long_clip_slot, slots.stretched_slot, slots.t5_slot, slots.tokenizer_slots


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_each_family_gets_its_slots_from_its_components(kind):
    slots = detect_slots(BUILDERS[kind]())
    assert slots.kind == kind and _described(slots) == EXPECTED[kind]


def test_sd3_loaded_without_t5_is_still_sd3():
    components = tiny_sd3_pipeline().components
    pipe = StableDiffusion3Pipeline(**{**components, "text_encoder_3": None, "tokenizer_3": None})
    assert detect_slots(pipe).kind == "sd3"


@pytest.mark.parametrize("kind", ["sd", "sdxl", "flux", "sd3"])
def test_a_saved_pipeline_is_classified_from_model_index_alone(kind, tmp_path):
    BUILDERS[kind]().save_pretrained(tmp_path)
    for weights in tmp_path.rglob("*.safetensors"):
        weights.unlink()  # nothing but model_index.json is read
    assert slots_from_model_index(tmp_path).kind == kind


def test_an_unknown_family_in_model_index_is_refused_naming_its_encoders(tmp_path):
    index = {
        "_class_name": "HunyuanVideoPipeline",
        "text_encoder": ["transformers", "LlamaModel"],
        "text_encoder_2": ["transformers", "CLIPTextModel"],
    }
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(IncompatibleEncoderError, match="text_encoder: LlamaModel, text_encoder_2: CLIPTextModel"):
        slots_from_model_index(tmp_path)


def test_a_model_index_without_clip_encoders_is_refused(tmp_path):
    index = {"_class_name": "ChromaPipeline", "text_encoder": ["transformers", "T5EncoderModel"]}
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(IncompatibleEncoderError, match="ChromaPipeline has no CLIP text encoder"):
        slots_from_model_index(tmp_path)


def test_a_pipeline_with_an_unknown_mix_of_encoders_is_refused_naming_them():
    pipe = FluxPipeline(**{**tiny_flux_pipeline().components, "text_encoder_2": tiny_text_encoder(seed=1)})
    with pytest.raises(
        IncompatibleEncoderError, match=r"\(text_encoder: CLIPTextModel, text_encoder_2: CLIPTextModel\)"
    ):
        detect_slots(pipe)
