"""The pipelines/ files and the importable pipeline classes, loaded the ways diffusers users load
pipelines: ``custom_pipeline=`` with a local file, ``from_pretrained``, ``from_pipe``; saved and
reloaded with ``save_pretrained`` / ``from_pretrained``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionXLPipeline
from diffusers.utils import dynamic_modules_utils
from pipeline_helpers import sdxl_embeds, write_tiny_model_dirs

from longclip_diffusers import LongClipStableDiffusionPipeline, LongClipStableDiffusionXLPipeline
from longclip_diffusers.tiny import tiny_long_clip_encoder

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
PROMPT = "a red cat sits under a tree near the river " * 12


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return write_tiny_model_dirs(tmp_path_factory.mktemp("models"))


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
