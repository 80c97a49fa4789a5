"""Textual-inversion embeddings and text-encoder LoRA load into a patched pipeline and change
its 248-token embeddings (SD1.x, SDXL, Flux.1, SD3); a LoRA scale reaches the clip_skip path too."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig, get_peft_model_state_dict
from pipeline_helpers import flux_embeds, sd3_embeds, sd_embeds, sdxl_embeds
from safetensors.torch import save_file

from longclip_diffusers import IncompatibleEncoderError, apply_long_clip
from longclip_diffusers.tiny import (
    tiny_flux_pipeline,
    tiny_long_clip_encoder,
    tiny_pipeline_and_long_clip,
    tiny_sd_pipeline,
    tiny_sdxl_pipeline,
)

PROMPT = "a <tiny-style> cat sits under a tree"


def _lora_file(pipe, folder):
    """A random-weight LoRA on the attention projections of ``pipe.text_encoder``, saved in the
    diffusers format."""
    encoder = copy.deepcopy(pipe.text_encoder)
    projections = ["q_proj", "k_proj", "v_proj", "out_proj"]
    encoder.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=projections, init_lora_weights=False))
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(encoder))
    type(pipe).save_lora_weights(folder, text_encoder_lora_layers=layers)
    return folder


def test_textual_inversion_file_loads_into_a_patched_pipeline(tmp_path):
    pipe = apply_long_clip(tiny_sd_pipeline(), tiny_long_clip_encoder())
    vector = torch.randn(1, 32)
    save_file({"emb_params": vector}, tmp_path / "tiny-style.safetensors")
    before = sd_embeds(pipe, PROMPT)
    pipe.load_textual_inversion(tmp_path / "tiny-style.safetensors", token="<tiny-style>")
    token_id = pipe.tokenizer.convert_tokens_to_ids("<tiny-style>")
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[token_id], vector[0])
    assert pipe.tokenizer.model_max_length == 248
    after = sd_embeds(pipe, PROMPT)
    assert after.shape == (1, 248, 32) and not torch.allclose(before, after)


def test_textual_inversion_into_the_stretched_text_encoder_2_leaves_the_stock_one_alone():
    stock = tiny_sdxl_pipeline()
    long = apply_long_clip(type(stock).from_pipe(stock), tiny_long_clip_encoder())
    vocabulary = len(stock.tokenizer_2)
    long.load_textual_inversion(
        torch.randn(1, 32), token="<tiny-style>", text_encoder=long.text_encoder_2, tokenizer=long.tokenizer_2
    )
    long.load_textual_inversion(torch.randn(1, 32), token="<tiny-style>")
    assert len(stock.tokenizer_2) == vocabulary
    assert stock.text_encoder_2.get_input_embeddings().num_embeddings == vocabulary
    assert sdxl_embeds(long, PROMPT)[0].shape == (1, 248, 64)


def test_text_encoder_lora_loads_into_a_patched_pipeline_and_unloads(tmp_path):
    pipe = apply_long_clip(tiny_sd_pipeline(), tiny_long_clip_encoder())
    before = sd_embeds(pipe, PROMPT)
    pipe.load_lora_weights(_lora_file(pipe, tmp_path))
    with_lora = sd_embeds(pipe, PROMPT)
    assert with_lora.shape == (1, 248, 32) and not torch.allclose(before, with_lora)
    pipe.unload_lora_weights()
    torch.testing.assert_close(sd_embeds(pipe, PROMPT), before)


def test_lora_scale_applies_to_the_clip_skip_encoding(tmp_path):
    pipe = apply_long_clip(tiny_sd_pipeline(), tiny_long_clip_encoder())
    without = sd_embeds(pipe, PROMPT, clip_skip=1)
    pipe.load_lora_weights(_lora_file(pipe, tmp_path))
    assert not torch.allclose(sd_embeds(pipe, PROMPT, clip_skip=1), without)
    torch.testing.assert_close(sd_embeds(pipe, PROMPT, clip_skip=1, lora_scale=0.0), without)


@pytest.mark.parametrize("pipeline", [tiny_sdxl_pipeline, tiny_flux_pipeline], ids=["sdxl", "flux"])
def test_lora_loaded_before_apply_is_refused_with_the_order_to_use(tmp_path, pipeline):
    pipe = pipeline()
    pipe.load_lora_weights(_lora_file(pipe, tmp_path))
    with pytest.raises(IncompatibleEncoderError, match="load_lora_weights after it"):
        apply_long_clip(pipe, tiny_long_clip_encoder())


@pytest.mark.parametrize("kind, read", [("flux", lambda e: e[1]), ("sd3", lambda e: e[0])], ids=["flux", "sd3"])
def test_text_encoder_lora_after_the_swap_changes_the_248_token_encoding_and_scales(tmp_path, kind, read):
    """Flux: the pooled vector; SD3: the embeddings. ``lora_scale=0`` turns the LoRA off, as diffusers
    scales the text-encoder layers around its own encoding."""
    encode = flux_embeds if kind == "flux" else sd3_embeds
    pipe = apply_long_clip(*tiny_pipeline_and_long_clip(kind))
    before = read(encode(pipe, PROMPT))
    pipe.load_lora_weights(_lora_file(pipe, tmp_path))
    assert not torch.allclose(read(encode(pipe, PROMPT)), before)
    torch.testing.assert_close(read(encode(pipe, PROMPT, lora_scale=0.0)), before)
    assert pipe.tokenizer_max_length == 248


@pytest.mark.parametrize("kind", ["sd", "sdxl", "flux", "sd3"])
def test_a_pipeline_derived_from_a_patched_one_with_lora_takes_apply_and_keeps_the_lora(tmp_path, kind):
    """The README's flow: patch, load a LoRA, from_pipe to another task, apply again without a
    source. Nothing is swapped (the encoders read 248 already), so the LoRA is no obstacle."""
    encode = {"sd": sd_embeds, "sdxl": sdxl_embeds, "flux": flux_embeds, "sd3": sd3_embeds}[kind]
    pipe = apply_long_clip(*tiny_pipeline_and_long_clip(kind))
    pipe.load_lora_weights(_lora_file(pipe, tmp_path))
    derived = apply_long_clip(type(pipe).from_pipe(pipe))
    assert derived.text_encoder is pipe.text_encoder and derived.text_encoder.peft_config
    torch.testing.assert_close(encode(derived, PROMPT), encode(pipe, PROMPT))
