"""The model object the released ``longclip.load`` returns, as a thin module over a converted
``CLIPModel`` (or :class:`~longclip_diffusers.TulipModel`): the released method names, the
transformers computations."""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPModel

from ..compat import text_config
from ..errors import TextTooLongError
from ..tulip import TulipModel


class LongCLIP(nn.Module):
    """``encode_text``, ``encode_image``, ``forward(image, text)`` and ``logit_scale`` of the
    released Long-CLIP model, computed by ``model`` (a transformers ``CLIPModel`` or
    ``TulipModel``, kept as :attr:`model`).

    Features are projected and not normalised, in the model's dtype, as released; ``forward``
    gives ``(logits_per_image, logits_per_text)``: the cosine similarities times
    ``logit_scale.exp()``.
    """

    def __init__(self, model: CLIPModel | TulipModel):
        super().__init__()
        self.model = model

    @property
    def logit_scale(self) -> nn.Parameter:
        """The learnt log temperature (``logits = logit_scale.exp() * cosine``)."""
        return self.model.logit_scale

    @property
    def dtype(self) -> torch.dtype:
        """The dtype inputs are cast to (float16 on a GPU after :func:`~.loading.load`)."""
        return self.model.dtype

    @property
    def context_length(self) -> int:
        """The most tokens a text may have: 248 for Long-CLIP."""
        return int(text_config(self.model).max_position_embeddings)

    @property
    def input_resolution(self) -> int:
        """The image side the vision tower reads (224, or 336 for the 336px models)."""
        return int(self.model.config.vision_config.image_size)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """``[B, E]`` text features of token ids ``[B, L]`` (from :func:`~.tokenization.tokenize`),
        read at each row's end token."""
        self._check_length(text)
        return self.model.get_text_features(input_ids=text).pooler_output

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, E]`` image features of preprocessed images ``[B, 3, H, W]``."""
        return self.model.get_image_features(pixel_values=image.to(self.dtype)).pooler_output

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits_per_image [B_image, B_text], logits_per_text [B_text, B_image])``."""
        self._check_length(text)
        output = self.model(input_ids=text, pixel_values=image.to(self.dtype))
        return output.logits_per_image, output.logits_per_text

    def _check_length(self, text: torch.Tensor) -> None:
        if text.shape[-1] > self.context_length:
            raise TextTooLongError(
                f"the token ids are {text.shape[-1]} long but this model reads {self.context_length} positions. "
                f"Fix: tokenize with context_length={self.context_length}."
            )
