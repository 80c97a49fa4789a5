"""CLIP's image preprocessing with PIL and torch only (no torchvision): resize the short side
bicubically, centre-crop, scale to [0, 1], normalise with CLIP's mean and std
(docs/checkpoint-format.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD


@dataclass(frozen=True)
class ClipImageTransform:
    """Callable PIL image -> ``[3, size, size]`` float tensor; picklable for DataLoader workers."""

    size: int = 224
    mean: tuple[float, ...] = tuple(OPENAI_CLIP_MEAN)
    std: tuple[float, ...] = tuple(OPENAI_CLIP_STD)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        width, height = image.size
        scale = self.size / min(width, height)
        resized = (max(self.size, int(width * scale)), max(self.size, int(height * scale)))
        image = image.resize(resized, Image.BICUBIC)
        left = int(round((resized[0] - self.size) / 2.0))
        top = int(round((resized[1] - self.size) / 2.0))
        image = image.crop((left, top, left + self.size, top + self.size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (pixels - mean) / std
