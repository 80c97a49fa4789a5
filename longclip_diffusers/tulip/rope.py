"""Rotary position embedding (RoPE) maths for the TULIP text tower, as pure functions.

TULIP (ICLR 2025, section 3.2; docs/tulip.md) drops CLIP's absolute position table and
rotates queries and keys in every attention layer instead: dimension pair ``i`` of a head of
size ``d`` at position ``m`` turns by the angle ``m * base ** (-2i / d)``, base 10000. Pairs are
interleaved, ``(x[0], x[1]), (x[2], x[3]), ...``, which is the layout the released open_clip
tower uses (it views the last axis as complex numbers); the "rotate half" layout of Llama ports
would pair different features and silently break converted weights.
"""

from __future__ import annotations

import torch

from ..errors import InvalidArgumentError

#: RoPE base of the TULIP release and of RoFormer (docs/tulip.md).
DEFAULT_ROPE_BASE = 10000.0
#: NTK scaling hyper-parameter of the TULIP paper's expansion stage (section 4, "alpha = 8").
DEFAULT_NTK_ALPHA = 8.0


def ntk_scaled_base(base: float, alpha: float, new_length: int, old_length: int, head_dim: int) -> float:
    """The NTK-aware RoPE base for running a model trained at ``old_length`` tokens at
    ``new_length``: ``base * (alpha * new_length / old_length - (alpha - 1)) ** (d / (d - 2))``.

    This is the dynamic-NTK form the TULIP release uses (docs/tulip.md). It returns
    ``base`` unchanged when ``new_length == old_length``; shorter lengths are not an extension and
    are refused.
    """
    if head_dim <= 2 or head_dim % 2:
        raise InvalidArgumentError(f"head_dim must be an even number above 2; got {head_dim}")
    if old_length < 1 or new_length < old_length:
        raise InvalidArgumentError(
            f"NTK scaling extends a context: new_length ({new_length}) must be at least "
            f"old_length ({old_length}), both positive"
        )
    if alpha < 1:
        raise InvalidArgumentError(f"the NTK alpha must be at least 1; got {alpha}")
    factor = alpha * new_length / old_length - (alpha - 1)
    return float(base * factor ** (head_dim / (head_dim - 2)))


def rotary_angles(position_ids: torch.Tensor, head_dim: int, base: float = DEFAULT_ROPE_BASE) -> torch.Tensor:
    """Rotation angles ``[..., positions, head_dim // 2]`` (float32) for integer ``position_ids``.

    float32 throughout, as in the release, so converted weights see the angles they were trained
    with.
    """
    if head_dim % 2:
        raise InvalidArgumentError(f"RoPE rotates pairs of features, so head_dim must be even; got {head_dim}")
    exponents = torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim
    inverse_frequencies = 1.0 / (base**exponents)
    return position_ids.to(torch.float32).unsqueeze(-1) * inverse_frequencies


def rotary_tables(
    position_ids: torch.Tensor, head_dim: int, base: float = DEFAULT_ROPE_BASE
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` of :func:`rotary_angles`, each ``[..., positions, head_dim // 2]``."""
    angles = rotary_angles(position_ids, head_dim, base)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the interleaved feature pairs of ``x`` (``[..., positions, head_dim]``) by the
    tables of :func:`rotary_tables` (broadcast over the leading axes).

    The product is formed in float32 and cast back, so half-precision models rotate exactly.
    """
    pairs = x.to(torch.float32).unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)
