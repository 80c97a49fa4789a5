"""Make any text encoder read a given number of tokens, without touching the one passed in.

A CLIP encoder with a shorter position table is stretched (knowledge-preserved stretching,
docs/stretching.md; the ratio from :func:`~longclip_diffusers.length.stretching.stretch_plan`); a TULIP
encoder, whose rotary positions have no table, gets the length as a setting
(docs/tulip.md). Either change is made on a twin sharing the weights
(:mod:`longclip_diffusers.length.weight_sharing`), so the encoder passed in, which a stock pipeline or
the caller may still use, stays as it was.
"""

from __future__ import annotations

from torch import nn

from ..compat import text_config, text_transformer
from ..tulip.context import set_context_length
from ..tulip.modeling import TulipPreTrainedModel
from .stretching import DEFAULT_KEEP, stretch_plan, stretch_text_encoder
from .weight_sharing import twin_sharing_weights


def fit_encoder_length(
    model: nn.Module, length: int, keep: int = DEFAULT_KEEP, ratio: float | None = None
) -> nn.Module:
    """``model`` itself when it reads ``length`` tokens as it is (a CLIP table of at least
    ``length`` rows, a TULIP encoder set to ``length``), else a twin that does: a CLIP table
    stretched with ``keep``/``ratio`` (:func:`~longclip_diffusers.length.stretching.stretch_plan`; raises
    :class:`~longclip_diffusers.IncompatibleEncoderError` when a given ``ratio`` falls short), or a
    TULIP encoder set to ``length``."""
    positions = text_config(model).max_position_embeddings
    if isinstance(model, TulipPreTrainedModel):
        if positions == length:
            return model
        return set_context_length(twin_sharing_weights(model), length)
    if positions >= length:
        return model
    ratio, rows = stretch_plan(positions, length, keep, ratio)
    return stretch_text_encoder(twin_sharing_weights(model), keep=keep, ratio=ratio, length=rows)


def position_limit(encoder: nn.Module) -> int | float:
    """How many tokens ``encoder`` can read: the rows of its position table, or infinity for an
    encoder without one (TULIP's rotary positions have no cap)."""
    table = getattr(text_transformer(encoder).embeddings, "position_embedding", None)
    return table.num_embeddings if table is not None else float("inf")
