"""Knowledge-preserved stretching (KPS) of absolute position tables.

The rule is the one in the released Long-CLIP code, which produced the published weights
(docs/stretching.md; Long-CLIP paper, Eq. 2, with keep=20 and ratio=4 giving 248 rows):

* row ``p < keep`` is copied unchanged;
* row ``p >= keep`` reads the old table at ``s = keep + (p - keep) / ratio``: linear
  interpolation between rows ``floor(s)`` and ``floor(s) + 1`` while ``s <= L - 1``, and linear
  extrapolation of the last segment beyond it (rows 245-247 for 77 -> 248).

``keep=0`` is the paper's "direct fine-tuning" baseline: every position interpolated with one
fixed ratio.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import torch
from torch import nn

from ..compat import text_transformer
from ..constants import DEFAULT_KEEP, DEFAULT_RATIO
from ..errors import IncompatibleEncoderError, InvalidArgumentError

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def stretched_length(old_length: int, keep: int = DEFAULT_KEEP, ratio: float = DEFAULT_RATIO) -> int:
    """Number of rows ``keep + (old_length - keep) * ratio`` after stretching; must be whole."""
    _check_arguments(old_length, keep, ratio)
    length = keep + (old_length - keep) * ratio
    if not float(length).is_integer():
        raise InvalidArgumentError(
            f"keep={keep}, ratio={ratio} on a table of {old_length} rows gives {length} rows, "
            "which is not a whole number; pick keep/ratio that give a whole number of rows."
        )
    return int(length)


def stretch_plan(
    old_length: int, length: int, keep: int = DEFAULT_KEEP, ratio: float | None = None
) -> tuple[float, int]:
    """``(ratio, rows)`` that stretch an ``old_length``-row table to read at least ``length`` tokens.

    ``ratio`` None takes Long-CLIP's 4 (77 -> 248) when that gives enough rows, else the ratio
    that spreads the stretched rows over exactly ``length``. A given ``ratio`` that gives fewer
    than ``length`` rows raises :class:`IncompatibleEncoderError`.
    """
    rows = stretched_length(old_length, keep, DEFAULT_RATIO if ratio is None else ratio)
    if rows >= length:
        return DEFAULT_RATIO if ratio is None else ratio, rows
    if ratio is not None:
        raise IncompatibleEncoderError(
            f"stretching {old_length} positions with keep={keep}, ratio={ratio} gives {rows}, fewer "
            f"than the {length} tokens asked for: raise ratio, leave it out, or ask for fewer tokens"
        )
    if old_length == keep:
        raise IncompatibleEncoderError(
            f"keep={keep} keeps all {old_length} rows, leaving none to stretch to {length}: lower keep"
        )
    return (length - keep) / (old_length - keep), length


def stretch_position_table(
    table: torch.Tensor,
    keep: int = DEFAULT_KEEP,
    ratio: float = DEFAULT_RATIO,
    length: int | None = None,
) -> torch.Tensor:
    """Return the stretched copy of a ``[L, W]`` position table (float32 maths, input dtype out).

    ``length`` defaults to :func:`stretched_length`; a longer one extrapolates further.
    """
    if table.ndim != 2:
        raise InvalidArgumentError(f"a position table is 2-D [positions, width]; got shape {tuple(table.shape)}")
    old_length = table.shape[0]
    if length is None:
        length = stretched_length(old_length, keep, ratio)
    else:
        _check_arguments(old_length, keep, ratio)
        if length < keep:
            raise InvalidArgumentError(f"length={length} is shorter than keep={keep}")

    source = table.detach().to(torch.float32)
    last = old_length - 1
    s = keep + (torch.arange(keep, length, dtype=torch.float64) - keep) / ratio
    inside = s <= last
    lower = torch.floor(s).long().clamp(max=last)
    upper = (lower + 1).clamp(max=last)
    weight = (s - lower).to(torch.float32).unsqueeze(1)
    interpolated = source[lower] + weight * (source[upper] - source[lower])
    beyond = (s - last).to(torch.float32).unsqueeze(1)
    extrapolated = source[last] + beyond * (source[last] - source[last - 1])
    moved = torch.where(inside.unsqueeze(1), interpolated, extrapolated)
    out = torch.cat([source[:keep], moved], dim=0)
    return out.to(dtype=table.dtype, device=table.device)


def stretch_text_encoder(
    model: ModuleT,
    keep: int = DEFAULT_KEEP,
    ratio: float = DEFAULT_RATIO,
    length: int | None = None,
) -> ModuleT:
    """Stretch, in place, the text positions of a ``CLIPTextModel``, ``CLIPTextModelWithProjection``
    or ``CLIPModel``: new position table, ``position_ids`` buffer and config, same dtype and device.

    Returns the model for chaining. ``ratio=1`` keeps the table as it is. Without ``length``,
    any other ``keep``/``ratio`` that would not lengthen the table (``keep`` equal to its length,
    a ratio below 1) raises :class:`InvalidArgumentError` and leaves the model as it was.
    """
    embeddings = text_transformer(model).embeddings
    old = position_table(model).weight
    if length is None and ratio != 1 and (rows := stretched_length(old.shape[0], keep, ratio)) <= old.shape[0]:
        raise InvalidArgumentError(
            f"keep={keep}, ratio={ratio:g} on a table of {old.shape[0]} positions gives {rows}: "
            f"nothing would be stretched. Fix: keep fewer rows than the table has (Long-CLIP keeps "
            f"{DEFAULT_KEEP}) and a ratio above 1, or pass length="
        )
    new_table = stretch_position_table(old.data, keep=keep, ratio=ratio, length=length)
    new_length = new_table.shape[0]

    new_embedding = nn.Embedding(new_length, new_table.shape[1], device=old.device, dtype=old.dtype)
    new_embedding.weight.data.copy_(new_table)
    new_embedding.weight.requires_grad_(old.requires_grad)
    embeddings.position_embedding = new_embedding
    embeddings.register_buffer(
        "position_ids",
        torch.arange(new_length, device=old.device).unsqueeze(0),
        persistent=False,
    )
    for config in _text_configs(model):
        config.max_position_embeddings = new_length
    return model


def position_table(model: nn.Module) -> nn.Embedding:
    """The text position table of a CLIP model; raises :class:`IncompatibleEncoderError` for a
    TULIP encoder, whose rotary positions have none (nothing to stretch)."""
    table = getattr(text_transformer(model).embeddings, "position_embedding", None)
    if table is None:
        raise IncompatibleEncoderError(
            f"this {type(model).__name__} has no position table to stretch: it uses rotary positions "
            "(TULIP), which read any length as they are. Fix: no stretching needed; set its length "
            "with set_context_length(encoder, N)"
        )
    return table


def _text_configs(model: nn.Module) -> list:
    configs = [model.config]
    text_config = getattr(model.config, "text_config", None)
    if text_config is not None:
        configs.append(text_config)
    inner = getattr(model, "text_model", None)
    if inner is not None and getattr(inner, "config", None) is not None:
        configs.append(inner.config)
    unique: list[Any] = []
    for config in configs:
        if all(config is not seen for seen in unique):
            unique.append(config)
    return [c for c in unique if hasattr(c, "max_position_embeddings")]


def _check_arguments(old_length: int, keep: int, ratio: float) -> None:
    if old_length < 2:
        raise InvalidArgumentError(f"a position table needs at least 2 rows to stretch; got {old_length}")
    if not 0 <= keep <= old_length:
        raise InvalidArgumentError(f"keep={keep} must be between 0 and the table length {old_length}")
    if not (math.isfinite(ratio) and ratio > 0):
        raise InvalidArgumentError(f"ratio must be a positive number; got {ratio}")
