"""apply_long_clip on SD1.x pipelines: 248 tokens end to end, side by side with a stock pipeline,
dtype/device, offloading, any pipeline class built on the same components."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    ControlNetModel,
    StableDiffusionControlNetPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)
from pipeline_helpers import sd_embeds, tail_prompts

from longclip_diffusers import apply_long_clip, long_clip_pair
from longclip_diffusers.tiny import tiny_long_clip_encoder, tiny_sd_pipeline


@pytest.fixture
def pipe():
    return tiny_sd_pipeline()


def test_200_token_prompt_runs_end_to_end_with_248_token_embeddings(pipe, long_prompt):
    encoder = tiny_long_clip_encoder()
    apply_long_clip(pipe, encoder)
    assert pipe.text_encoder is encoder
    assert pipe.tokenizer.model_max_length == 248
    assert sd_embeds(pipe, long_prompt).shape == (1, 248, 32)
    image = pipe(long_prompt, num_inference_steps=2, height=32, width=32, output_type="np").images[0]
    assert image.shape == (32, 32, 3) and np.isfinite(image).all()


def test_tokens_after_100_change_the_embeddings_only_after_apply(pipe):
    first, second = tail_prompts()
    assert torch.equal(sd_embeds(pipe, first), sd_embeds(pipe, second))  # stock: cut at 77
    apply_long_clip(pipe, tiny_long_clip_encoder())
    assert not torch.allclose(sd_embeds(pipe, first), sd_embeds(pipe, second))


def test_side_by_side_pipelines_share_unet_and_vae_and_the_stock_one_stays_at_77(pipe, long_prompt):
    before = sd_embeds(pipe, long_prompt)
    stock, long = long_clip_pair(pipe, tiny_long_clip_encoder())
    assert long.unet is stock.unet and long.vae is stock.vae
    assert long.text_encoder is not stock.text_encoder and long.tokenizer is not stock.tokenizer
    assert stock.tokenizer.model_max_length == 77
    assert torch.equal(sd_embeds(stock, long_prompt), before)
    assert sd_embeds(long, long_prompt).shape == (1, 248, 32)


def test_encoder_is_cast_to_the_replaced_encoders_dtype(pipe, long_prompt):
    pipe.text_encoder.to(torch.bfloat16)
    apply_long_clip(pipe, tiny_long_clip_encoder())
    assert pipe.text_encoder.dtype == torch.bfloat16
    assert pipe.text_encoder.device == torch.device("cpu")
    assert sd_embeds(pipe, long_prompt).dtype == torch.bfloat16


def test_model_cpu_offload_hooks_are_registered_on_the_new_encoder(pipe, long_prompt):
    pipe.enable_model_cpu_offload(device="cpu")
    hooks = len(pipe._all_hooks)
    encoder = tiny_long_clip_encoder()
    apply_long_clip(pipe, encoder)
    assert hasattr(encoder, "_hf_hook") and len(pipe._all_hooks) == hooks
    assert any(hook.model is encoder for hook in pipe._all_hooks)
    image = pipe(long_prompt, num_inference_steps=2, height=32, width=32, output_type="np").images[0]
    assert np.isfinite(image).all()


def test_pipeline_classes_are_told_apart_by_components_not_names(pipe, long_prompt):
    img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
    controlnet = StableDiffusionControlNetPipeline(
        **pipe.components, controlnet=ControlNetModel.from_unet(pipe.unet, conditioning_channels=3)
    )
    for variant in (img2img, controlnet):
        apply_long_clip(variant, tiny_long_clip_encoder())
        assert sd_embeds(variant, long_prompt).shape == (1, 248, 32)
    image = img2img(
        long_prompt, image=torch.rand(1, 3, 32, 32), num_inference_steps=2, strength=1.0, output_type="np"
    ).images[0]
    assert np.isfinite(image).all()


def test_saved_patched_pipeline_reloads_with_248_tokens_and_takes_apply_without_a_source(pipe, tmp_path, long_prompt):
    apply_long_clip(pipe, tiny_long_clip_encoder())
    expected = sd_embeds(pipe, long_prompt)
    pipe.save_pretrained(tmp_path / "long")
    reloaded = StableDiffusionPipeline.from_pretrained(tmp_path / "long")
    assert reloaded.tokenizer.model_max_length == 248
    torch.testing.assert_close(sd_embeds(reloaded, long_prompt), expected)
    apply_long_clip(reloaded)  # installs the clip_skip-capable prompt encoding, keeps the encoder
    assert sd_embeds(reloaded, long_prompt, clip_skip=1).shape == (1, 248, 32)
