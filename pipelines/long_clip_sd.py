"""diffusers custom-pipeline file: Stable Diffusion 1.x with a Long-CLIP text encoder (248 tokens).

    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained(
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        custom_pipeline="pipelines/long_clip_sd.py",
        trust_remote_code=True,                # diffusers asks this for any custom-pipeline file
        long_clip="BeichenZhang/LongCLIP-L",   # hub id, checkpoint file, folder or CLIPTextModel
        long_clip_recipe="standard",
    )

The class lives in the installed package (``pip install longclip-diffusers``); this file is what
``custom_pipeline=`` points at.
"""

from longclip_diffusers.drop_in.pipeline_classes import LongClipStableDiffusionPipeline

__all__ = ["LongClipStableDiffusionPipeline"]
