"""The pipelines/ files and the importable pipeline classes, loaded the ways diffusers users load
pipelines: ``custom_pipeline=`` with a local file, ``from_pretrained``, ``from_pipe``; saved and
reloaded with ``save_pretrained`` / ``from_pretrained``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import DiffusionPipeline, FluxPipeline, StableDiffusion3Pipeline, StableDiffusionXLPipeline
from diffusers.utils import dynamic_modules_utils
from pipeline_helpers import T5_TOKENS, flux_embeds, sd3_embeds, sdxl_embeds, write_tiny_model_dirs

from longclip_diffusers import (
    IncompatibleEncoderError,
    LongClipFluxPipeline,
    LongClipStableDiffusion3Pipeline,
    LongClipStableDiffusionPipeline,
    LongClipStableDiffusionXLPipeline,
)
from longclip_diffusers.tiny import tiny_long_clip_encoder, tiny_sd3_pipeline

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
PROMPT = "a red cat sits under a tree near the river " * 12


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return write_tiny_model_dirs(tmp_path_factory.mktemp("models"), kinds=("sd", "sdxl", "flux", "sd3"))


@pytest.fixture(autouse=True)
def _modules_cache(tmp_path, monkeypatch):
    """diffusers copies custom-pipeline files into a modules cache: keep it in the test's folder."""
    monkeypatch.setattr(dynamic_modules_utils, "HF_MODULES_CACHE", str(tmp_path / "modules"))


@pytest.mark.parametrize(
    "folder, file, class_name, shape",
    [
        ("sdxl", "long_clip_sdxl.py", "LongClipStableDiffusionXLPipeline", (1, 248, 64)),
        ("sd", "long_clip_sd.py", "LongClipStableDiffusionPipeline", (1, 248, 32)),
    ],
)
def test_custom_pipeline_file_loads_with_a_long_clip_folder_and_recipe(dirs, folder, file, class_name, shape):
    pipe = DiffusionPipeline.from_pretrained(
        dirs / folder,
        custom_pipeline=str(PIPELINES / file),
        trust_remote_code=True,
        long_clip=str(dirs / "long-clip"),
        long_clip_recipe="longclip",
    )
    assert type(pipe).__name__ == class_name
    assert pipe.encode_prompt.recipe == "longclip"
    assert pipe.tokenizer.model_max_length == 248
    embeds = pipe.encode_prompt(PROMPT, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False)[0]
    assert embeds.shape == shape
    latents = pipe(PROMPT, num_inference_steps=2, height=64, width=64, output_type="latent").images
    assert torch.isfinite(latents).all()


def test_saved_long_clip_pipeline_reloads_with_its_recipe_and_no_source(dirs, tmp_path):
    pipe = LongClipStableDiffusionXLPipeline.from_pretrained(
        dirs / "sdxl", long_clip=str(dirs / "long-clip"), long_clip_recipe="longclip"
    )
    expected = sdxl_embeds(pipe, PROMPT)
    pipe.save_pretrained(tmp_path / "saved")
    reloaded = LongClipStableDiffusionXLPipeline.from_pretrained(tmp_path / "saved")
    assert reloaded.encode_prompt.recipe == "longclip"
    for got, want in zip(sdxl_embeds(reloaded, PROMPT), expected):
        torch.testing.assert_close(got, want)
    stock_class = StableDiffusionXLPipeline.from_pretrained(tmp_path / "saved")
    assert stock_class.tokenizer_2.model_max_length == 248


def test_from_pipe_builds_a_long_clip_pipeline_next_to_the_stock_one(dirs):
    stock = StableDiffusionXLPipeline.from_pretrained(dirs / "sdxl")
    long = LongClipStableDiffusionXLPipeline.from_pipe(stock, long_clip=tiny_long_clip_encoder())
    assert long.unet is stock.unet and long.vae is stock.vae
    assert sdxl_embeds(long, PROMPT)[0].shape == (1, 248, 64)
    assert sdxl_embeds(stock, PROMPT)[0].shape == (1, 77, 64)


def test_sd_class_without_a_source_on_77_token_encoders_says_what_to_pass(dirs):
    with pytest.raises(ValueError, match="no Long-CLIP source"):
        LongClipStableDiffusionPipeline.from_pretrained(dirs / "sd")


def test_saved_long_clip_pipeline_reloads_through_the_custom_pipeline_file(dirs, tmp_path):
    pipe = LongClipStableDiffusionXLPipeline.from_pretrained(
        dirs / "sdxl", long_clip=str(dirs / "long-clip"), long_clip_recipe="longclip"
    )
    expected = sdxl_embeds(pipe, PROMPT)
    pipe.save_pretrained(tmp_path / "saved")
    reloaded = DiffusionPipeline.from_pretrained(
        tmp_path / "saved", custom_pipeline=str(PIPELINES / "long_clip_sdxl.py"), trust_remote_code=True
    )
    assert type(reloaded).__name__ == "LongClipStableDiffusionXLPipeline"
    assert reloaded.encode_prompt.recipe == "longclip"
    for got, want in zip(sdxl_embeds(reloaded, PROMPT), expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    "folder, file, class_name, long_clip, encode, rows",
    [
        ("flux", "long_clip_flux.py", "LongClipFluxPipeline", "long-clip", flux_embeds, T5_TOKENS),
        (
            "sd3",
            "long_clip_sd3.py",
            "LongClipStableDiffusion3Pipeline",
            "long-clip-projection",
            sd3_embeds,
            248 + T5_TOKENS,
        ),
    ],
)
def test_flux_and_sd3_custom_pipeline_files_load_with_a_long_clip_folder(
    dirs, folder, file, class_name, long_clip, encode, rows
):
    pipe = DiffusionPipeline.from_pretrained(
        dirs / folder, custom_pipeline=str(PIPELINES / file), trust_remote_code=True, long_clip=str(dirs / long_clip)
    )
    assert type(pipe).__name__ == class_name
    assert pipe.tokenizer.model_max_length == pipe.tokenizer_max_length == 248
    assert encode(pipe, PROMPT)[0].shape[1] == rows
    latents = pipe(
        PROMPT, num_inference_steps=2, height=16, width=16, max_sequence_length=T5_TOKENS, output_type="latent"
    ).images
    assert torch.isfinite(latents).all()


@pytest.mark.parametrize(
    "cls, stock_cls, folder, long_clip, encode",
    [
        (LongClipFluxPipeline, FluxPipeline, "flux", "long-clip", flux_embeds),
        (LongClipStableDiffusion3Pipeline, StableDiffusion3Pipeline, "sd3", "long-clip-projection", sd3_embeds),
    ],
    ids=["flux", "sd3"],
)
def test_flux_and_sd3_classes_save_reload_and_pair_with_the_stock_pipeline(
    dirs, tmp_path, cls, stock_cls, folder, long_clip, encode
):
    pipe = cls.from_pretrained(dirs / folder, long_clip=str(dirs / long_clip))
    expected = encode(pipe, PROMPT)
    pipe.save_pretrained(tmp_path / "saved")
    reloaded = cls.from_pretrained(tmp_path / "saved")
    for got, want in zip(encode(reloaded, PROMPT), expected):
        torch.testing.assert_close(got, want)
    stock = stock_cls.from_pretrained(dirs / folder)
    long = cls.from_pipe(stock, long_clip=str(dirs / long_clip))
    assert long.transformer is stock.transformer and stock.tokenizer_max_length == 77
    for got, want in zip(encode(long, PROMPT), expected):
        torch.testing.assert_close(got, want)


def test_sd3_class_refuses_the_longclip_recipe():
    with pytest.raises(IncompatibleEncoderError, match="SD3 pipelines take recipe='standard'"):
        LongClipStableDiffusion3Pipeline(
            **tiny_sd3_pipeline().components,
            long_clip=tiny_long_clip_encoder(with_projection=True),
            long_clip_recipe="longclip",
        )
