"""ComfyUI nodes: encode a prompt into SD1.5 or SDXL CONDITIONING with Long-CLIP (248 tokens).

The encoders go into a ComfyUI CLIP (:func:`.comfy_clips.clip_of_encoders`) and the prompt through
ComfyUI's own tokenize / encode path, exactly as CLIP Text Encode (SDXL) on a CLIP from
Long-CLIP into CLIP: prompt weighting, ``embedding:name``, chunking past 248 tokens (with a console
warning), clip-skip. TULIP, whose rotary positions ComfyUI's towers cannot hold, is encoded in one
piece by :mod:`longclip_diffusers.comfyui.conditioning`, with a warning of what that leaves out.
"""

from __future__ import annotations

from longclip_diffusers.comfyui.clip_state_dicts import SLOT_WIDTHS, check_slot_width
from longclip_diffusers.comfyui.conditioning import sd15_conditioning, sdxl_conditioning
from longclip_diffusers.drop_in.layer_recipes import RECIPES, check_recipe
from longclip_diffusers.errors import IncompatibleEncoderError
from longclip_diffusers.length.tokens import token_report
from longclip_diffusers.tulip import TulipPreTrainedModel

from .comfy_clips import FINAL_NORMALIZED_LAYER, LOGGER, clip_of_encoders, encode, encode_sdxl
from .loader_node import CATEGORY, TEXT_ENCODER

#: ComfyUI's own size limit for latent images (``nodes.MAX_RESOLUTION``).
MAX_RESOLUTION = 16384


def _size(default: int) -> tuple:
    return ("INT", {"default": default, "min": 0, "max": MAX_RESOLUTION})


def _is_tulip(encoder) -> bool:
    return isinstance(encoder.model, TulipPreTrainedModel)


def _warn_tulip(encoder, text: str) -> None:
    dropped = token_report(text, encoder.tokenizer, encoder.tokenizer.model_max_length).dropped
    cut = f"; {len(dropped)} words past its {encoder.tokenizer.model_max_length} tokens are cut" if dropped else ""
    LOGGER.warning(
        "Long-CLIP: TULIP is encoded outside ComfyUI's text encoders, so prompt weighting and "
        "embedding:name are read as plain text%s",
        cut,
    )


class LongCLIPTextEncodeSD15:
    """SD1.x conditioning from a Long-CLIP-L encoder: ``[[cond [1, 248 k, 768], {"pooled_output"}]]``."""

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
                        "tooltip": "layers skipped from the end, as diffusers' clip_skip (ComfyUI's CLIP Set Last Layer -1 - clip_skip)",
                    },
                ),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Encodes a prompt with Long-CLIP-L for SD1.5 through ComfyUI's text encoder: 248 tokens per "
        "chunk, (word:1.2) weighting, embedding:name."
    )

    def encode(self, text_encoder, text: str, clip_skip: int = 0):
        check_slot_width("clip_l", text_encoder.width, SLOT_WIDTHS["clip_l"])
        if _is_tulip(text_encoder):
            _warn_tulip(text_encoder, text)
            return (sd15_conditioning(text_encoder, text, clip_skip or None),)
        clip = clip_of_encoders([text_encoder.model])
        if clip_skip:
            clip = clip.clone()
            clip.clip_layer(-(clip_skip + 1))
        return (encode(clip, text),)


class LongCLIPTextEncodeSDXL:
    """SDXL conditioning from Long-CLIP-L (``clip_l``) and the stretched bigG (``clip_g``), both
    at 248 tokens: ``[[cond [1, 248 k, 2048], {"pooled_output" [1, 1280], "width", ...}]]``, with
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
        "Encodes prompts for SDXL with both encoders at 248 tokens (clip_g stretched) through ComfyUI's "
        "text encoders. recipe: standard = the penultimate layers SDXL was trained on; longclip = the "
        "last layers after the final LayerNorm, as the released Long-CLIP code."
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
        check_recipe(recipe)
        check_slot_width("clip_l", clip_l.width, SLOT_WIDTHS["clip_l"], "the clip_l encoder")
        check_slot_width("clip_g", clip_g.width, SLOT_WIDTHS["clip_g"], "the clip_g encoder")
        if getattr(clip_g.model, "text_projection", None) is None:
            raise IncompatibleEncoderError(
                "the clip_g encoder has no text projection, which SDXL pools from; load SDXL's second "
                "text encoder in the loader's clip_g slot"
            )
        sizes = {
            "width": width,
            "height": height,
            "crop_w": crop_w,
            "crop_h": crop_h,
            "target_width": target_width,
            "target_height": target_height,
        }
        if _is_tulip(clip_l) or _is_tulip(clip_g):
            for encoder, text in ((clip_l, text_l), (clip_g, text_g)):
                if _is_tulip(encoder):
                    _warn_tulip(encoder, text)
            return (sdxl_conditioning(clip_l, clip_g, text_l, text_g, recipe=recipe, **sizes),)
        clip = clip_of_encoders([clip_l.model, clip_g.model])
        if recipe == "longclip":
            clip = clip.clone()
            clip.clip_layer(FINAL_NORMALIZED_LAYER)
        return (encode_sdxl(clip, text_g, text_l, sizes),)
