"""A model under evaluation: the CLIP-like model, its tokenizer, its image preprocessing and
the text length it reads, loaded once from any source the shared loader takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..io.loading import DEFAULT_TOKENIZER, load_clip_model, load_tokenizer
from .features import encode_images, encode_texts, text_max_length
from .preprocessing import ImageTransform, image_transform_for


@dataclass
class EvalModel:
    """What evaluation needs from a model; ``max_length`` is the text length it reads."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    image_transform: ImageTransform

    @property
    def max_length(self) -> int:
        return text_max_length(self.model)

    def encode_texts(self, texts: Sequence[str], **options) -> torch.Tensor:
        """:func:`~.features.encode_texts` with this model and tokenizer."""
        return encode_texts(self.model, self.tokenizer, texts, **options)

    def encode_images(self, images: Sequence, **options) -> torch.Tensor:
        """:func:`~.features.encode_images` with this model and its preprocessing."""
        return encode_images(self.model, self.image_transform, images, **options)


def load_eval_model(
    source: str | Path,
    *,
    tokenizer: str | Path | None = None,
    device: str | torch.device | None = None,
    torch_dtype: str | torch.dtype | None = None,
) -> EvalModel:
    """Load a full CLIP-like model (a transformers ``CLIPModel`` or TULIP folder, an
    OpenAI-layout checkpoint such as ``longclip-L.pt`` or a TULIP checkpoint, or a hub id) with
    its tokenizer and image preprocessing.

    ``tokenizer`` (a folder or hub id) serves sources that carry none, such as the released
    checkpoint files; by default those use CLIP-L's tokenizer from the hub. A plain OpenAI CLIP
    file (e.g. ``ViT-L-14.pt``) is scored as CLIP, at its own 77 tokens, not stretched.
    """
    model = load_clip_model(source, torch_dtype=torch_dtype, device=device, stretch=False)
    text_tokenizer = load_tokenizer(source, fallback=tokenizer or DEFAULT_TOKENIZER)
    # A borrowed CLIP-L tokenizer says 77; the model reads its own length.
    text_tokenizer.model_max_length = text_max_length(model)
    return EvalModel(
        name=str(source),
        model=model,
        tokenizer=text_tokenizer,
        image_transform=image_transform_for(model, source),
    )
