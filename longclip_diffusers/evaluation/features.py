"""Batched, L2-normalised text and image features for evaluation.

The model only needs ``get_text_features(input_ids=..., attention_mask=...)`` and
``get_image_features(pixel_values=...)`` (transformers' ``CLIPModel`` API), returning either a
tensor (transformers 4) or an output whose ``pooler_output`` holds the projected features
(transformers 5); any model with that surface (CLIP, Long-CLIP, TULIP) plugs in. Features come
back as float32 on the CPU, normalised, in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..compat import text_config
from ..errors import IncompatibleEncoderError
from .preprocessing import ImageTransform


def text_max_length(model) -> int:
    """The longest text the model reads: ``max_position_embeddings`` of its text config (77 for
    CLIP; 248 for Long-CLIP and for TULIP, whose rotary positions are set to a context length)."""
    positions = getattr(text_config(model), "max_position_embeddings", None)
    if not positions:
        raise IncompatibleEncoderError(
            f"{type(model).__name__} has no max_position_embeddings in its text config: pass max_length explicitly"
        )
    return int(positions)


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


def _features(output) -> torch.Tensor:
    features = output if isinstance(output, torch.Tensor) else output.pooler_output
    features = features.float()
    return (features / features.norm(dim=-1, keepdim=True)).cpu()


@torch.inference_mode()
def encode_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    max_length: int | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> torch.Tensor:
    """``[len(texts), E]`` text features, each text cut to ``max_length`` tokens (counting the
    start and end tokens; default: :func:`text_max_length`) with the end token kept last."""
    max_length = max_length or text_max_length(model)
    device = _model_device(model)
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc=f"texts @{max_length}", disable=not progress):
        # Padding to the batch's longest is exact: attention is causal and pooling reads the
        # end token, so nothing after it changes the feature.
        tokens = tokenizer(
            list(texts[start : start + batch_size]),
            padding="longest",
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        chunks.append(
            _features(model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]))
        )
    return torch.cat(chunks)


class _PreprocessedImages(torch.utils.data.Dataset):
    def __init__(self, images: Sequence[Path | str | Image.Image], image_transform: ImageTransform):
        self.images, self.image_transform = images, image_transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        if isinstance(image, Image.Image):
            return self.image_transform(image.convert("RGB"))
        with Image.open(image) as opened:
            return self.image_transform(opened.convert("RGB"))


@torch.inference_mode()
def encode_images(
    model,
    image_transform: ImageTransform,
    images: Sequence[Path | str | Image.Image],
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """``[len(images), E]`` image features; ``images`` holds paths or PIL images, decoded and
    preprocessed by ``image_transform`` (see :func:`~.preprocessing.image_transform_for`) in
    ``num_workers`` loader processes."""
    device = _model_device(model)
    dtype = next(model.parameters()).dtype
    loader = torch.utils.data.DataLoader(
        _PreprocessedImages(images, image_transform), batch_size=batch_size, num_workers=num_workers
    )
    chunks = [
        _features(model.get_image_features(pixel_values=pixels.to(device, dtype)))
        for pixels in tqdm(loader, desc="images", disable=not progress)
    ]
    return torch.cat(chunks)
