"""ComfyUI node: load a Long-CLIP or TULIP text encoder, reading 248 tokens, from any file a
ComfyUI user has (docs/comfyui-nodes.md)."""

from __future__ import annotations

from longclip_diffusers.comfyui.conditioning import load_encoder_with_tokenizer
from longclip_diffusers.constants import DEFAULT_TOKENIZER
from longclip_diffusers.errors import InvalidArgumentError

from .comfy_clips import comfy_tokenizer_dir
from .model_folders import model_choices, resolve_source

#: The socket type the encode nodes take.
TEXT_ENCODER = "LONGCLIP_TEXT_ENCODER"
CATEGORY = "conditioning/longclip"

#: Which slot the encoder fills: CLIP-L (SD1.x, SDXL, SD3, Flux.1), or SDXL's / SD3's OpenCLIP
#: bigG (loaded with its projection, the pooled vector). Also picks that encoder from a file or
#: diffusers folder holding both (an SDXL checkpoint, ComfyUI's clip_l. / clip_g. files).
SLOTS = ("clip_l", "clip_g")


class LongCLIPTextEncoderLoader:
    """A text encoder from ComfyUI's ``models/text_encoders``, ``models/clip`` or
    ``models/checkpoints`` folders, or from a typed path or hub id: a released Long-CLIP ``.pt``
    / ``.safetensors``, a ComfyUI text-encoder file, an SD1.x / SDXL / SD3 / Flux checkpoint, a
    transformers or diffusers folder. A 77-position encoder is stretched to 248 on load."""

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
        "Loads a 248-token text encoder. clip_l: Long-CLIP-L (or TULIP) for SD1.5, SDXL, SD3 and Flux; "
        "clip_g: SDXL's second encoder (a ComfyUI clip_g file, an SDXL checkpoint, a text_encoder_2 "
        "folder), stretched to 248 positions."
    )

    def load(self, model: str, path_or_hub_id: str, slot: str):
        if slot not in SLOTS:
            raise InvalidArgumentError(f"slot must be one of {', '.join(SLOTS)}; got {slot!r}")
        source = resolve_source(model, path_or_hub_id)
        encoder = load_encoder_with_tokenizer(
            source,
            with_projection=slot == "clip_g",
            tower=slot,
            tokenizer_fallback=comfy_tokenizer_dir() or DEFAULT_TOKENIZER,
        )
        return (encoder,)
