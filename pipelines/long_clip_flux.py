"""diffusers custom-pipeline file: Flux.1 with Long-CLIP-L as its CLIP text encoder (248 tokens in
the pooled vector; T5 is left as it is).

    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained(
        "black-forest-labs/FLUX.1-dev",
        torch_dtype=torch.bfloat16,
        custom_pipeline="pipelines/long_clip_flux.py",
        trust_remote_code=True,                # diffusers asks this for any custom-pipeline file
        long_clip="BeichenZhang/LongCLIP-L",   # hub id, checkpoint file, folder or CLIPTextModel
    )

The class lives in the installed package (``pip install longclip-diffusers``); this file is what
``custom_pipeline=`` points at.
"""

from longclip_diffusers.drop_in.pipeline_classes import LongClipFluxPipeline

__all__ = ["LongClipFluxPipeline"]
