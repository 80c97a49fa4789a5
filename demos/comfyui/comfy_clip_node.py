"""ComfyUI node: put Long-CLIP into a ComfyUI CLIP object, so ComfyUI's own nodes read 248 tokens.

The CLIP of SD1.x, SDXL, SD3 / SD3.5 or Flux.1 is rebuilt by ComfyUI's text-encoder loader with
Long-CLIP-L as ``clip_l``, SDXL's / SD3's ``clip_g`` stretched to 248 positions and T5 untouched
(:func:`.comfy_clips.rebuild_with_long_clip`); a LoRA loaded before the node is kept on the weights
that still exist, or refused with an error. Works only inside ComfyUI.
"""

from __future__ import annotations

from longclip_diffusers.errors import IncompatibleEncoderError
from longclip_diffusers.tulip import TulipPreTrainedModel

from .comfy_clips import rebuild_with_long_clip
from .loader_node import CATEGORY, TEXT_ENCODER


class LongCLIPIntoCLIP:
    """CLIP (SD1.x, SDXL, SD3, Flux.1) + a Long-CLIP-L text encoder -> a CLIP reading 248 tokens."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "text_encoder": (TEXT_ENCODER,)}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Rebuilds the CLIP with Long-CLIP-L as clip_l (SDXL's and SD3's clip_g stretched to 248, T5 "
        "untouched), keeping a LoRA loaded before it, so CLIP Text Encode and ComfyUI's other nodes "
        "read 248 tokens."
    )

    def apply(self, clip, text_encoder):
        if isinstance(text_encoder.model, TulipPreTrainedModel):
            raise IncompatibleEncoderError(
                "TULIP has rotary positions, which ComfyUI's CLIP towers cannot hold; encode TULIP "
                "with the Long-CLIP text-encode nodes instead"
            )
        return (rebuild_with_long_clip(clip, text_encoder.model),)
