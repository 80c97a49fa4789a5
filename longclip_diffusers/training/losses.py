"""The Long-CLIP fine-tuning loss as pure tensor functions (docs/pcm-loss.md; Long-CLIP
paper, section 3.3 "primary component matching").

Every function takes the features of the WHOLE batch (all processes, gathered with gradient)
plus ``rows``, the slice this process owns. A process scores its own rows against the whole
batch, as the released code does; summed over processes (DDP averages the gradients) this is
exactly the loss of one process holding the whole batch, so results do not depend on how many
processes share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..errors import InvalidArgumentError

#: Defaults of the paper and the released code (docs/pcm-loss.md).
DEFAULT_PCA_DIM = 32
DEFAULT_LABEL_SMOOTHING = 0.1
DEFAULT_SHORT_LOSS_WEIGHT = 1.0


class PcmLoss(NamedTuple):
    """``total = long + short_weight * short``; the parts are kept for logging."""

    total: torch.Tensor
    long: torch.Tensor
    short: torch.Tensor | None


def pca_reconstruct(features: torch.Tensor, dim: int = DEFAULT_PCA_DIM) -> torch.Tensor:
    """Reconstruct ``features [N, D]`` from their top ``dim`` principal components over the
    batch: subtract the batch mean, project on the ``dim`` leading right singular vectors, map
    back and add the mean. No re-normalisation; gradients flow through the SVD (as released).

    Centred data has rank at most ``N - 1``, so with ``N <= dim + 1`` rows (or ``D <= dim``) the
    reconstruction is exact and the input is returned as it is: this is why the released
    per-GPU PCA is a no-op at 33 samples or fewer per GPU.

    The result is in at least float32, like the logits it feeds (:func:`contrastive_logits`).
    """
    if dim < 1:
        raise InvalidArgumentError(f"pca dim must be at least 1; got {dim}")
    # SVD in at least float32: half-precision SVD is unsupported or inaccurate on every backend.
    x = features.to(torch.promote_types(features.dtype, torch.float32))
    rows, width = x.shape
    if rows <= dim + 1 or width <= dim:
        return x
    with torch.autocast(x.device.type, enabled=False):
        mean = x.mean(dim=0, keepdim=True)
        centred = x - mean
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        components = vh[:dim].T
        return (centred @ components) @ components.T + mean


def grouped_pca_reconstruct(
    features: torch.Tensor, dim: int, group_sizes: Sequence[int] | None = None
) -> torch.Tensor:
    """:func:`pca_reconstruct` run separately on consecutive row groups of the given sizes.

    The per-process batch sizes on a gathered batch reproduce the released per-GPU PCA
    (``--pca-scope local``); ``None`` (one group) is the PCA over the global batch.
    """
    if group_sizes is None or len(group_sizes) == 1:
        return pca_reconstruct(features, dim)
    if sum(group_sizes) != features.shape[0]:
        raise InvalidArgumentError(
            f"PCA group sizes {list(group_sizes)} do not add up to the {features.shape[0]} rows"
        )
    return torch.cat([pca_reconstruct(chunk, dim) for chunk in features.split(list(group_sizes))])


def contrastive_logits(
    features: torch.Tensor, others: torch.Tensor, logit_scale: torch.Tensor, rows: slice | None = None
) -> torch.Tensor:
    """``exp(logit_scale) * features[rows] @ others.T`` in at least float32, autocast or not:
    at a scale of 100, bfloat16's 8-bit mantissa rounds away the logit gaps between similar
    captions that the softmax is trained on."""
    dtype = torch.promote_types(features.dtype, torch.float32)
    rows = rows if rows is not None else slice(0, features.shape[0])
    with torch.autocast(features.device.type, enabled=False):
        return logit_scale.to(dtype).exp() * features[rows].to(dtype) @ others.to(dtype).T


def clip_contrastive_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    label_smoothing: float = DEFAULT_LABEL_SMOOTHING,
    rows: slice | None = None,
) -> torch.Tensor:
    """Symmetric CLIP loss: mean of image-to-text and text-to-image cross-entropy with label
    smoothing, logits ``exp(logit_scale) * a @ b.T``; row ``i`` of each side matches row ``i``.

    ``rows`` picks the rows this process owns (default: all); they are scored against every row
    of the other side. The result is the mean over the owned rows (0 when there are none).
    """
    if image_features.shape != text_features.shape:
        raise InvalidArgumentError(
            f"image features {tuple(image_features.shape)} and text features "
            f"{tuple(text_features.shape)} must have the same shape (one caption per image)"
        )
    rows = rows if rows is not None else slice(0, image_features.shape[0])
    image_logits = contrastive_logits(image_features, text_features, logit_scale, rows)
    text_logits = contrastive_logits(text_features, image_features, logit_scale, rows)
    targets = torch.arange(image_features.shape[0], device=image_features.device)[rows]
    count = max(targets.numel(), 1)
    image_loss = F.cross_entropy(image_logits, targets, label_smoothing=label_smoothing, reduction="sum")
    text_loss = F.cross_entropy(text_logits, targets, label_smoothing=label_smoothing, reduction="sum")
    return (image_loss + text_loss) / (2 * count)


def pcm_loss(
    image_features: torch.Tensor,
    long_text_features: torch.Tensor,
    short_text_features: torch.Tensor | None,
    logit_scale: torch.Tensor,
    *,
    pca_dim: int | None = DEFAULT_PCA_DIM,
    short_weight: float = DEFAULT_SHORT_LOSS_WEIGHT,
    label_smoothing: float = DEFAULT_LABEL_SMOOTHING,
    rows: slice | None = None,
    pca_group_sizes: Sequence[int] | None = None,
) -> PcmLoss:
    """Long-CLIP's loss: ``clip(I, T_long) + short_weight * clip(PCA(I), T_short)``.

    Features are L2-normalised by the caller. ``short_weight = 0`` (or no short features)
    trains on long captions only. ``pca_dim=None`` scores the short captions against the image
    features themselves (TULIP's stage 2: plain long + short contrastive loss).
    ``pca_group_sizes`` is None for the PCA over the global batch, the per-process batch sizes
    for the released per-process PCA.
    """
    long = clip_contrastive_loss(image_features, long_text_features, logit_scale, label_smoothing, rows)
    if short_weight == 0 or short_text_features is None:
        return PcmLoss(long, long, None)
    coarse = image_features if pca_dim is None else grouped_pca_reconstruct(image_features, pca_dim, pca_group_sizes)
    short = clip_contrastive_loss(coarse, short_text_features, logit_scale, label_smoothing, rows)
    return PcmLoss(long + short_weight * short, long, short)
