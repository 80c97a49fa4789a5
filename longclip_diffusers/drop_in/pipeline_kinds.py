"""What kind of Stable Diffusion pipeline an object is, read from its components.

The class name says little (img2img, inpaint, ControlNet, community pipelines all reuse the same
text side), so the decision is made on the text encoders a pipeline holds:

* ``"sd"``: a CLIP text model in ``text_encoder`` and no ``text_encoder_2`` (SD1.x / 2.x);
* ``"sdxl"``: ``text_encoder`` (CLIP-L) and ``text_encoder_2`` (OpenCLIP bigG with projection);
* ``"refiner"``: only ``text_encoder_2``.

A text model is anything with CLIP's text tower (``embeddings``, ``encoder``,
``final_layer_norm``): ``CLIPTextModel`` and TULIP's ``TulipTextModel`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..compat import text_transformer
from ..errors import IncompatibleEncoderError, UnsupportedModelError


@dataclass(frozen=True)
class PipelineSlots:
    """The text side of a pipeline: which slot takes Long-CLIP, which is stretched."""

    kind: str

    @property
    def long_clip_slot(self) -> str | None:
        """The component replaced by a Long-CLIP encoder (the CLIP-L slot), if any."""
        return None if self.kind == "refiner" else "text_encoder"

    @property
    def stretched_slot(self) -> str | None:
        """The component stretched to the long length in place of a swap, if any."""
        return None if self.kind == "sd" else "text_encoder_2"

    @property
    def encoder_slots(self) -> tuple[str, ...]:
        return tuple(s for s in (self.long_clip_slot, self.stretched_slot) if s)

    @property
    def tokenizer_slots(self) -> tuple[str, ...]:
        return tuple(s.replace("text_encoder", "tokenizer") for s in self.encoder_slots)


def detect_slots(pipe) -> PipelineSlots:
    """Classify ``pipe`` by its text encoders; raise :class:`IncompatibleEncoderError` when it has
    none, or holds text encoders of another family (T5, SD3's triple encoder, ...)."""
    encoder = getattr(pipe, "text_encoder", None)
    encoder_2 = getattr(pipe, "text_encoder_2", None)
    name = type(pipe).__name__
    if encoder is None and encoder_2 is None:
        raise IncompatibleEncoderError(
            f"{name} has no CLIP text encoder (no text_encoder or text_encoder_2 component); "
            "apply_long_clip works on SD1.x and SDXL pipelines: load one with its text encoders"
        )
    if (
        getattr(pipe, "text_encoder_3", None) is not None
        or (encoder is not None and (not is_text_encoder(encoder) or hasattr(encoder, "text_projection")))
        or (encoder_2 is not None and (not is_text_encoder(encoder_2) or not hasattr(encoder_2, "text_projection")))
    ):
        raise IncompatibleEncoderError(
            f"{name} holds text encoders apply_long_clip does not know "
            f"(text_encoder: {type(encoder).__name__}, text_encoder_2: {type(encoder_2).__name__}); "
            "it supports SD1.x (CLIPTextModel) and SDXL (CLIPTextModel + CLIPTextModelWithProjection)"
        )
    kind = "sdxl" if encoder is not None and encoder_2 is not None else "sd" if encoder is not None else "refiner"
    slots = PipelineSlots(kind)
    for slot in slots.tokenizer_slots:
        if getattr(pipe, slot, None) is None:
            raise IncompatibleEncoderError(
                f"{name} has no {slot} for its {slot.replace('tokenizer', 'text_encoder')}; "
                "load the pipeline with its tokenizers"
            )
    return slots


def is_text_encoder(model) -> bool:
    """Whether ``model`` has a CLIP-style text tower (see the module docstring)."""
    try:
        text_transformer(model)
    except UnsupportedModelError:
        return False
    return isinstance(model, nn.Module)
