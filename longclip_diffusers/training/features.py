"""One module whose forward gives everything the contrastive loss needs.

DDP (what ``accelerator.prepare`` wraps a model in across processes) synchronises gradients
only for computation that runs through the wrapped module's ``forward``; calling
``get_text_features`` on the inner model would bypass it. So the image pass and both text
passes live in this single forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .trimmed_text import encode_text

if TYPE_CHECKING:
    from transformers import CLIPModel

    from ..tulip.full_model import TulipModel


class ClipFeatures(NamedTuple):
    """L2-normalised float32 features; ``short_text`` is None when short captions are not used."""

    image: torch.Tensor
    long_text: torch.Tensor
    short_text: torch.Tensor | None
    logit_scale: torch.Tensor


class ContrastiveFeatures(nn.Module):
    """Wraps a ``CLIPModel`` or ``TulipModel`` (``self.clip``): images and token ids in, normalised
    features out."""

    def __init__(self, clip: CLIPModel | TulipModel, eos_token_id: int):
        super().__init__()
        self.clip = clip
        self.eos_token_id = eos_token_id

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        short_input_ids: torch.Tensor | None = None,
    ) -> ClipFeatures:
        """``pixel_values`` ``[N, 3, H, W]``, or projected image features ``[N, E]`` read from a
        feature cache (:mod:`.feature_cache`), which skip the vision tower."""
        if pixel_values.ndim == 2:
            image = pixel_values
        else:
            image = self.clip.get_image_features(pixel_values=pixel_values).pooler_output
        long_text = encode_text(self.clip, input_ids, self.eos_token_id)
        short_text = None
        if short_input_ids is not None:
            short_text = _unit(encode_text(self.clip, short_input_ids, self.eos_token_id))
        return ClipFeatures(_unit(image), _unit(long_text), short_text, self.clip.logit_scale)


def _unit(features: torch.Tensor) -> torch.Tensor:
    """L2-normalised in float32, whatever precision the towers ran in: the loss's logits and
    PCA need it (:func:`~.losses.contrastive_logits`), and casting N x E features costs
    nothing next to the towers."""
    return F.normalize(features.float(), dim=-1)
