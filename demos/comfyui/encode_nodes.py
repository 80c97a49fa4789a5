"""ComfyUI nodes: encode a prompt of up to 248 tokens into SD1.5 or SDXL CONDITIONING."""

from __future__ import annotations

from longclip_diffusers.comfyui.conditioning import sd15_conditioning, sdxl_conditioning
from longclip_diffusers.drop_in.layer_recipes import RECIPES

from .loader_node import CATEGORY, TEXT_ENCODER

#: ComfyUI's own size limit for latent images (``nodes.MAX_RESOLUTION``).
MAX_RESOLUTION = 16384


def _size(default: int) -> tuple:
    return ("INT", {"default": default, "min": 0, "max": MAX_RESOLUTION})


class LongCLIPTextEncodeSD15:
    """SD1.x conditioning from a Long-CLIP-L encoder: ``[[cond [1, 248, 768], {"pooled_output"}]]``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder": (TEXT_ENCODER,),
                "text": ("STRING", {"multiline": True, "dynamicPrompts": True}),
                "clip_skip": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 11,
                        "tooltip": "layers skipped from the end, as diffusers' clip_skip",
                    },
                ),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    DESCRIPTION = "Encodes up to 248 tokens in one piece (no 77-token chunks) for SD1.5."

    def encode(self, text_encoder, text: str, clip_skip: int = 0):
        return (sd15_conditioning(text_encoder, text, clip_skip or None),)


class LongCLIPTextEncodeSDXL:
    """SDXL conditioning from Long-CLIP-L (``clip_l``) and the stretched bigG (``clip_g``), both
    at 248 tokens: ``[[cond [1, 248, 2048], {"pooled_output" [1, 1280], "width", ...}]]``, with
    the size fields of ComfyUI's ``CLIPTextEncodeSDXL``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clip_l": (TEXT_ENCODER,),
                "clip_g": (TEXT_ENCODER,),
                "width": _size(1024),
                "height": _size(1024),
                "crop_w": _size(0),
                "crop_h": _size(0),
                "target_width": _size(1024),
                "target_height": _size(1024),
                "text_g": ("STRING", {"multiline": True, "dynamicPrompts": True}),
                "text_l": ("STRING", {"multiline": True, "dynamicPrompts": True}),
                "recipe": (list(RECIPES), {"default": RECIPES[0]}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Encodes up to 248 tokens for SDXL with both encoders at 248 (clip_g stretched). "
        "recipe: standard = diffusers' penultimate layers; longclip = the released Long-CLIP code."
    )

    def encode(
        self,
        clip_l,
        clip_g,
        width: int,
        height: int,
        crop_w: int,
        crop_h: int,
        target_width: int,
        target_height: int,
        text_g: str,
        text_l: str,
        recipe: str = RECIPES[0],
    ):
        conditioning = sdxl_conditioning(
            clip_l,
            clip_g,
            text_l,
            text_g,
            width=width,
            height=height,
            crop_w=crop_w,
            crop_h=crop_h,
            target_width=target_width,
            target_height=target_height,
            recipe=recipe,
        )
        return (conditioning,)
