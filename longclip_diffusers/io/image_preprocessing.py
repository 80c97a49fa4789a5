"""CLIP's image preprocessing with PIL and torch only (no torchvision): resize the short side
bicubically, centre-crop, scale to [0, 1], normalise with CLIP's mean and std
(docs/checkpoint-format.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import transformers
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling


@dataclass(frozen=True)
class ClipImageTransform:
    """Callable PIL image -> ``[3, size, size]`` float tensor; picklable for DataLoader workers."""

    size: int = 224
    mean: tuple[float, ...] = tuple(OPENAI_CLIP_MEAN)
    std: tuple[float, ...] = tuple(OPENAI_CLIP_STD)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        width, height = image.size
        # integer arithmetic, as torchvision's Resize and transformers' processor size the long
        # side: width * (size / height) can fall a hair short of a whole number and lose a pixel
        long_side = self.size * max(width, height) // min(width, height)
        resized = (self.size, long_side) if width <= height else (long_side, self.size)
        image = image.resize(resized, Image.Resampling.BICUBIC)
        left = int(round((resized[0] - self.size) / 2.0))
        top = int(round((resized[1] - self.size) / 2.0))
        image = image.crop((left, top, left + self.size, top + self.size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (pixels - mean) / std


def clip_image_processor_class() -> type[BaseImageProcessor]:
    """transformers' CLIP image-processor class that runs without torchvision.

    Without torchvision, transformers 5 answers ``CLIPImageProcessor`` with ``CLIPImageProcessorPil``
    plus a warning on every load; asking for the PIL class directly gives the same processor (and the
    same saved file), quietly. Older releases have only ``CLIPImageProcessor``.
    """
    return getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor


def clip_image_processor(image_size: int) -> BaseImageProcessor:
    """transformers' image processor doing :class:`ClipImageTransform` at ``image_size``: bicubic
    resize of the short side, centre crop, OpenAI mean/std. Saved as ``CLIPImageProcessor``."""
    return clip_image_processor_class()(
        do_resize=True,
        size={"shortest_edge": image_size},
        resample=PILImageResampling.BICUBIC,
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        do_normalize=True,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        do_convert_rgb=True,
    )
