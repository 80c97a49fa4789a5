"""Text features at the batch's longest real length instead of the padded 248.

CLIP's text attention is causal and the pooled feature is read at the end-of-text token
(docs/checkpoint-format.md), so nothing after a caption's EOT changes its feature: cutting the
batch just after its longest caption's EOT gives the same features (up to float rounding) at a
fraction of the cost. ShareGPT4V short captions are ~20 tokens, long ones ~170.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import CLIPModel

    from ..tulip.full_model import TulipModel


def real_lengths(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Tokens up to and including each row's first EOT (the full row when it has none)."""
    is_eos = input_ids == eos_token_id
    first = is_eos.int().argmax(dim=1)
    return torch.where(is_eos.any(dim=1), first + 1, torch.full_like(first, input_ids.shape[1]))


def trim_to_longest(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """``input_ids`` cut after the longest row's EOT: the columns that change any feature."""
    return input_ids[:, : int(real_lengths(input_ids, eos_token_id).max())]


def encode_text(model: CLIPModel | TulipModel, input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Projected, un-normalised text features of a ``CLIPModel`` (or ``TulipModel``) for padded ``input_ids``,
    computed at the batch's longest real length."""
    return model.get_text_features(input_ids=trim_to_longest(input_ids, eos_token_id)).pooler_output
