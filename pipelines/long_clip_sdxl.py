"""diffusers custom-pipeline file: SDXL with Long-CLIP-L and a stretched OpenCLIP bigG, or a trained
Long-CLIP-G (248 tokens).

    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained(
        "stabilityai/stable-diffusion-xl-base-1.0",
        torch_dtype=torch.float16,
        custom_pipeline="pipelines/long_clip_sdxl.py",
        trust_remote_code=True,                # diffusers asks this for any custom-pipeline file
        long_clip="BeichenZhang/LongCLIP-L",   # hub id, checkpoint file, folder or CLIPTextModel
        long_clip_recipe="standard",           # or "longclip"
        long_clip_g="out/long-clip-g",         # optional: a trained Long-CLIP-G for text_encoder_2
    )

The class lives in the installed package (``pip install longclip-diffusers``); this file is what
``custom_pipeline=`` points at.
"""

from longclip_diffusers.drop_in.pipeline_classes import LongClipStableDiffusionXLPipeline

__all__ = ["LongClipStableDiffusionXLPipeline"]
