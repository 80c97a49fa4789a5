"""What kind of diffusers pipeline an object is, read from its components.

The class name says little (img2img, inpaint, ControlNet, Fill, Kontext, community pipelines all
reuse the same text side), so the decision is made on the text encoders a pipeline holds, each
given a role (``"clip"``: a CLIP text tower without projection, ``"clip_projection"``: with one,
``"t5"``: a T5 encoder):

=========== ================ ================== ================ ==========================
kind        ``text_encoder`` ``text_encoder_2`` ``text_encoder_3`` family
=========== ================ ================== ================ ==========================
``sd``      clip             -                  -                SD1.x / 2.x
``sdxl``    clip             clip_projection    -                SDXL base
``refiner`` -                clip_projection    -                SDXL refiner
``flux``    clip             t5                 -                Flux.1 (docs/sd3-flux.md)
``sd3``     clip_projection  clip_projection    t5 or -          SD3 / SD3.5 (docs/sd3-flux.md)
=========== ================ ================== ================ ==========================

A text tower is anything with CLIP's (``embeddings``, ``encoder``, ``final_layer_norm``):
``CLIPTextModel`` and TULIP's ``TulipTextModel`` alike. The same table classifies a saved
pipeline from its ``model_index.json`` before anything is loaded (:func:`slots_from_model_index`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn
from transformers import T5EncoderModel

from ..compat import text_transformer
from ..errors import IncompatibleEncoderError, UnsupportedModelError
from ..io.loading import resolve_pipeline
from .layer_recipes import check_recipe

ENCODER_SLOTS = ("text_encoder", "text_encoder_2", "text_encoder_3")

#: Roles of (text_encoder, text_encoder_2, text_encoder_3) -> pipeline kind.
_KINDS: dict[tuple[str | None, ...], str] = {
    ("clip", None, None): "sd",
    ("clip", "clip_projection", None): "sdxl",
    (None, "clip_projection", None): "refiner",
    ("clip", "t5", None): "flux",
    ("clip_projection", "clip_projection", "t5"): "sd3",
    ("clip_projection", "clip_projection", None): "sd3",  # SD3 loaded without T5
}

#: kind -> (slot swapped for Long-CLIP-L, slot stretched, slot of the untouched T5).
_SLOTS: dict[str, tuple[str | None, str | None, str | None]] = {
    "sd": ("text_encoder", None, None),
    "sdxl": ("text_encoder", "text_encoder_2", None),
    "refiner": (None, "text_encoder_2", None),
    "flux": ("text_encoder", None, "text_encoder_2"),
    "sd3": ("text_encoder", "text_encoder_2", "text_encoder_3"),
}

#: kind -> the ``encode_prompt`` arguments whose text reaches a CLIP encoder (Flux's ``prompt_2``
#: goes to T5 only, SD3's ``prompt_3`` likewise).
_CLIP_PROMPTS: dict[str, tuple[str, ...]] = {
    "sd": ("prompt", "negative_prompt"),
    "sdxl": ("prompt", "prompt_2", "negative_prompt", "negative_prompt_2"),
    "refiner": ("prompt", "negative_prompt"),
    "flux": ("prompt",),
    "sd3": ("prompt", "prompt_2", "negative_prompt", "negative_prompt_2"),
}

#: Saved class names (``model_index.json``) -> role.
_ROLE_OF_CLASS = {
    "CLIPTextModel": "clip",
    "TulipTextModel": "clip",
    "CLIPTextModelWithProjection": "clip_projection",
    "TulipTextModelWithProjection": "clip_projection",
    "T5EncoderModel": "t5",
}

_SUPPORTED = (
    "SD1.x (CLIPTextModel), SDXL (CLIPTextModel + CLIPTextModelWithProjection), the SDXL refiner, "
    "Flux.1 (CLIPTextModel + T5) and SD3 / SD3.5 (two CLIPTextModelWithProjection + T5)"
)


@dataclass(frozen=True)
class PipelineSlots:
    """The text side of a pipeline: which slot takes Long-CLIP, which is stretched, which T5
    is left alone."""

    kind: str

    @property
    def long_clip_slot(self) -> str | None:
        """The component replaced by a Long-CLIP encoder (the CLIP-L slot), if any."""
        return _SLOTS[self.kind][0]

    @property
    def stretched_slot(self) -> str | None:
        """The component stretched to the long length in place of a swap (OpenCLIP bigG), if any."""
        return _SLOTS[self.kind][1]

    @property
    def t5_slot(self) -> str | None:
        """The T5 encoder's component, untouched by Long-CLIP, if the family has one."""
        return _SLOTS[self.kind][2]

    @property
    def encoder_slots(self) -> tuple[str, ...]:
        """The CLIP encoder components, in ``encode_prompt``'s order."""
        return tuple(s for s in (self.long_clip_slot, self.stretched_slot) if s)

    @property
    def tokenizer_slots(self) -> tuple[str, ...]:
        """The CLIP tokenizers, one per CLIP encoder."""
        return tuple(s.replace("text_encoder", "tokenizer") for s in self.encoder_slots)

    @property
    def clip_prompts(self) -> tuple[str, ...]:
        """``encode_prompt`` arguments whose text a CLIP encoder reads."""
        return _CLIP_PROMPTS[self.kind]


def detect_slots(pipe) -> PipelineSlots:
    """Classify ``pipe`` by its text encoders (see the module docstring); raise
    :class:`IncompatibleEncoderError` when it has no CLIP text encoder, holds text encoders of
    another family, or lacks a CLIP encoder's tokenizer."""
    name = type(pipe).__name__
    encoders = [getattr(pipe, slot, None) for slot in ENCODER_SLOTS]
    class_names = [None if e is None else type(e).__name__ for e in encoders]
    slots = _classify(name, tuple(_role(encoder) for encoder in encoders), class_names)
    for slot in slots.tokenizer_slots:
        if getattr(pipe, slot, None) is None:
            raise IncompatibleEncoderError(
                f"{name} has no {slot} for its {slot.replace('tokenizer', 'text_encoder')}; "
                "load the pipeline with its tokenizers"
            )
    return slots


def slots_from_model_index(folder: str | os.PathLike) -> PipelineSlots:
    """Classify the pipeline saved in ``folder`` from its ``model_index.json`` alone (the classes
    it names for each text encoder), before any weights are loaded; raises as :func:`detect_slots`."""
    index = json.loads((Path(folder) / "model_index.json").read_text())
    classes = [_saved_class(index.get(slot)) for slot in ENCODER_SLOTS]
    roles = tuple(None if cls is None else _ROLE_OF_CLASS.get(cls, "other") for cls in classes)
    return _classify(index.get("_class_name", "the pipeline"), roles, classes)


def supported_pipeline_folder(id_or_dir: str | os.PathLike, recipe: str = "standard") -> tuple[Path, PipelineSlots]:
    """The local folder of the pipeline ``id_or_dir`` (:func:`~longclip_diffusers.io.loading.resolve_pipeline`)
    and its slots, read from ``model_index.json``: a pipeline ``apply_long_clip`` cannot patch, or a
    ``recipe`` its family does not take, fails here, before any weights are loaded."""
    folder = resolve_pipeline(id_or_dir)
    slots = slots_from_model_index(folder)
    check_recipe(recipe, slots.kind)
    return folder, slots


def _saved_class(entry) -> str | None:
    """The class name of one ``model_index.json`` entry (``["transformers", "CLIPTextModel"]``;
    ``[null, null]`` or no entry for an absent component)."""
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[1]:
        return str(entry[1])
    return None


def _classify(name: str, roles: tuple[str | None, ...], class_names: list[str | None]) -> PipelineSlots:
    if "clip" not in roles and "clip_projection" not in roles:
        raise IncompatibleEncoderError(
            f"{name} has no CLIP text encoder (text_encoder / text_encoder_2); apply_long_clip works on "
            f"{_SUPPORTED}: load one with its text encoders"
        )
    kind = _KINDS.get(roles)
    if kind is None:
        found = ", ".join(f"{slot}: {cls}" for slot, cls in zip(ENCODER_SLOTS, class_names) if cls)
        raise IncompatibleEncoderError(
            f"{name} holds text encoders apply_long_clip does not know ({found}); it supports {_SUPPORTED}"
        )
    return PipelineSlots(kind)


def _role(model) -> str | None:
    if model is None:
        return None
    if is_text_encoder(model):
        return "clip_projection" if hasattr(model, "text_projection") else "clip"
    return "t5" if isinstance(model, T5EncoderModel) else "other"


def is_text_encoder(model) -> bool:
    """Whether ``model`` has a CLIP-style text tower (see the module docstring)."""
    try:
        text_transformer(model)
    except UnsupportedModelError:
        return False
    return isinstance(model, nn.Module)
