"""ComfyUI node: load a Long-CLIP or TULIP text encoder and its tokenizer, reading 248 tokens."""

from __future__ import annotations

from longclip_diffusers.comfyui.conditioning import load_encoder_with_tokenizer

from .model_folders import model_choices, resolve_source

#: The socket type the encode nodes take.
TEXT_ENCODER = "LONGCLIP_TEXT_ENCODER"
CATEGORY = "conditioning/longclip"

#: Which pipeline slot the encoder fills: SD1.x / SDXL's CLIP-L, or SDXL's OpenCLIP bigG (loaded
#: with its projection, the pooled vector; stretched to 248 positions when it has 77).
SLOTS = ("clip_l", "clip_g")


class LongCLIPTextEncoderLoader:
    """A text encoder from ComfyUI's ``models/text_encoders`` / ``models/clip`` folders, or from
    a typed path or hub id (a released Long-CLIP ``.pt``, a transformers folder, ...)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (model_choices(),),
                "path_or_hub_id": ("STRING", {"default": "BeichenZhang/LongCLIP-L", "multiline": False}),
                "slot": (list(SLOTS), {"default": SLOTS[0]}),
            }
        }

    RETURN_TYPES = (TEXT_ENCODER,)
    RETURN_NAMES = ("text_encoder",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Loads a 248-token text encoder. clip_l: Long-CLIP-L (or TULIP) for SD1.5 and SDXL; "
        "clip_g: SDXL's second encoder (e.g. a text_encoder_2 folder), stretched to 248 positions."
    )

    def load(self, model: str, path_or_hub_id: str, slot: str):
        if slot not in SLOTS:
            raise ValueError(f"slot must be one of {', '.join(SLOTS)}; got {slot!r}")
        source = resolve_source(model, path_or_hub_id)
        return (load_encoder_with_tokenizer(source, with_projection=slot == "clip_g"),)
