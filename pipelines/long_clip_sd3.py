"""diffusers custom-pipeline file: SD3 / SD3.5 with Long-CLIP-L (with its projection) and a
stretched OpenCLIP bigG (248 tokens each); T5 is left as it is.

    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained(
        "stabilityai/stable-diffusion-3.5-large",
        torch_dtype=torch.bfloat16,
        custom_pipeline="pipelines/long_clip_sd3.py",
        trust_remote_code=True,                # diffusers asks this for any custom-pipeline file
        long_clip="BeichenZhang/LongCLIP-L",   # hub id, checkpoint file, folder or CLIPTextModelWithProjection
    )

The class lives in the installed package (``pip install longclip-diffusers``); this file is what
``custom_pipeline=`` points at.
"""

from longclip_diffusers.drop_in.pipeline_classes import LongClipStableDiffusion3Pipeline

__all__ = ["LongClipStableDiffusion3Pipeline"]
