"""The backward pass of the contrastive loss, in one pass or with gradient caching.

A contrastive loss couples every row of the global batch to every other, so the batch cannot
simply be split into accumulated micro-batches: the loss of a chunk alone is another loss.
Gradient caching (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch Size under Memory
Limited Setup", section 3) computes the same gradients in three stages:

1. the features of the whole local batch, chunk by chunk, without a graph;
2. the loss on the (gathered) features of the whole global batch, and its gradient with respect
   to each feature and to the logit scale; the features are leaves, so this graph is tiny;
3. each chunk run again with a graph, and backpropagated from its features with their gradients
   (``sum(features * gradients)``; the logit scale's gradient joins the last chunk).

By the chain rule the parameter gradients are those of one pass over the whole batch, up to
float rounding, whatever the loss does across rows: the global PCA of the short-caption loss
included. Activation memory then scales with the micro-batch, not the batch. Each chunk is
computed the same way in stages 1 and 3 (same rows, same trimming), so their features agree
exactly.

Across processes every process runs the same number of chunks (a process with fewer rows, after
unreadable images were dropped, re-runs a row with zero gradient), because each forward of a
DDP or FSDP model may take part in collectives. Gradients are synchronised once, in the last
chunk's backward; the others run under ``accelerator.no_sync``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from torch import nn

from .features import ClipFeatures
from .gather import BatchShards, gather_with_grad
from .losses import PcmLoss

#: ``loss(image, long_text, short_text, logit_scale)`` on features gathered over the global batch.
LossOfFeatures = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor], PcmLoss]


def contrastive_backward(
    accelerator,
    features: nn.Module,
    inputs: tuple,
    shards: BatchShards,
    loss_of: LossOfFeatures,
    micro_batch: int | None = None,
) -> PcmLoss:
    """Backpropagate the global contrastive loss into the parameters of ``features`` (a prepared
    :class:`~.features.ContrastiveFeatures`) for this process's ``inputs`` (``pixel_values`` or
    cached image features, ``input_ids``, ``short_input_ids`` or None); returns the loss.

    ``micro_batch`` None runs one forward and backward over the local batch; a number runs
    gradient caching with chunks of that many rows (same gradients, see the module docstring).
    """
    if micro_batch is None:
        with accelerator.autocast():
            out = features(*inputs)
        loss = _loss(loss_of, out, shards)
        accelerator.backward(loss.total)
        return loss
    local = shards.sizes[shards.rank]
    chunks = [_rows(k, micro_batch, local) for k in range(math.ceil(max(shards.sizes) / micro_batch))]

    with torch.no_grad(), accelerator.autocast():
        outs = [features(*_take(inputs, rows)) for rows, real in chunks if real]
    short = [o.short_text for o in outs if o.short_text is not None]
    leaves = ClipFeatures(
        _leaf(torch.cat([o.image for o in outs])),
        _leaf(torch.cat([o.long_text for o in outs])),
        _leaf(torch.cat(short)) if short else None,
        _leaf(outs[0].logit_scale),
    )
    loss = _loss(loss_of, leaves, shards)
    loss.total.backward()

    for k, (rows, real) in enumerate(chunks):
        last = k == len(chunks) - 1
        with accelerator.no_sync(features) if not last else contextlib.nullcontext():
            with accelerator.autocast():
                out = features(*_take(inputs, rows))
            terms = [
                (part * (_grad(leaf)[rows] if real else 0.0)).sum()
                for part, leaf in zip(out[:3], leaves[:3])
                if part is not None and leaf is not None and part.requires_grad
            ]
            if last and out.logit_scale.requires_grad:
                terms.append((out.logit_scale * _grad(leaves.logit_scale)).sum())
            if terms:
                accelerator.backward(torch.stack(terms).sum())
    return PcmLoss(loss.total.detach(), loss.long.detach(), loss.short.detach() if loss.short is not None else None)


def _loss(loss_of: LossOfFeatures, out: ClipFeatures, shards: BatchShards) -> PcmLoss:
    short = out.short_text
    return loss_of(
        gather_with_grad(out.image, shards),
        gather_with_grad(out.long_text, shards),
        gather_with_grad(short, shards) if short is not None else None,
        out.logit_scale,
    )


def _rows(chunk: int, size: int, local: int) -> tuple[slice, bool]:
    """Rows of chunk ``chunk``, and whether it holds any: a chunk past this process's rows
    re-runs row 0 (with a zero gradient) to keep step with the other processes."""
    rows = slice(chunk * size, min((chunk + 1) * size, local))
    return (rows, True) if rows.start < rows.stop else (slice(0, 1), False)


def _take(inputs: tuple, rows: slice) -> tuple:
    return tuple(value[rows] if value is not None else None for value in inputs)


def _leaf(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().requires_grad_(True)


def _grad(leaf: torch.Tensor) -> torch.Tensor:
    """The gradient the loss left on a feature leaf (zero when the loss does not use it)."""
    return leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
