"""The image preprocessing an evaluated model expects, as a picklable PIL -> tensor callable.

A model directory with a ``preprocessor_config.json`` (what ``save_clip_model`` and the hub's
CLIP repos hold) gets transformers' image processor built from it; anything else (a converted
``.pt`` checkpoint, an in-memory model) gets CLIP's standard transform at the vision tower's
image size (224, or 336 for the 336px models).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from ..errors import IncompatibleEncoderError
from ..io.image_preprocessing import ClipImageTransform, clip_image_processor_class

ImageTransform = Callable[[Image.Image], torch.Tensor]


class ProcessorTransform:
    """Adapts a transformers image processor to the PIL -> ``[3, H, W]`` callable."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


def image_transform_for(model, source: str | Path | None = None) -> ImageTransform:
    """The preprocessing saved with ``source`` when it is a model directory that has one,
    else CLIP's transform at ``model``'s image size."""
    if source is not None and (Path(source) / "preprocessor_config.json").is_file():
        return ProcessorTransform(clip_image_processor_class().from_pretrained(source))
    vision = getattr(model.config, "vision_config", None)
    if vision is None:
        raise IncompatibleEncoderError(
            f"{type(model).__name__} has no vision tower: evaluate a full CLIP model "
            "(text + vision), e.g. one written by `longclip-diffusers convert` without --text-only"
        )
    return ClipImageTransform(size=vision.image_size)
