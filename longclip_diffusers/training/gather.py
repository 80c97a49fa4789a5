"""All-gather of features across processes, WITH gradient (docs/distributed-training.md).

The backward pass sends each rank the sum of every rank's gradient for its slice, so a process
that scores its own rows against the gathered batch still trains on the whole batch's loss.
Processes may hold different numbers of rows (unreadable images are dropped from a batch): rows
are padded to the largest count for the collective and cut back.
Without an initialised process group everything is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class BatchShards:
    """How the global batch is split: ``sizes[r]`` rows on process ``r``; this is ``rank``."""

    sizes: tuple[int, ...]
    rank: int

    @property
    def rows(self) -> slice:
        """This process's rows in the gathered batch."""
        start = sum(self.sizes[: self.rank])
        return slice(start, start + self.sizes[self.rank])

    @property
    def total(self) -> int:
        return sum(self.sizes)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def all_gather_ints(values: list[int], device: torch.device | str = "cpu") -> list[list[int]]:
    """Every process's ``values`` (same length everywhere), in rank order: one small collective."""
    world, _ = _world()
    if world == 1:
        return [list(values)]
    local = torch.tensor(values, dtype=torch.long, device=device)
    parts = [torch.zeros_like(local) for _ in range(world)]
    dist.all_gather(parts, local)
    return [part.tolist() for part in parts]


class _AllGather(torch.autograd.Function):
    """``dist.all_gather`` of equal-shaped tensors, stacked in rank order; backward sums the
    gradient over processes. Why not ``torch.distributed.nn``'s, and why ``all_reduce``:
    docs/distributed-training.md."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        world, ctx.rank = _world()
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # a copy: autograd may hand the same gradient tensor to other functions
        summed = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(summed)
        return summed[ctx.rank]


def gather_with_grad(tensor: torch.Tensor, shards: BatchShards) -> torch.Tensor:
    """Concatenate every process's ``tensor`` (rows in rank order); gradients flow back to the
    process each row came from."""
    if len(shards.sizes) == 1:
        return tensor
    longest = max(shards.sizes)
    padding = tensor.new_zeros((longest - tensor.shape[0], *tensor.shape[1:]))
    gathered = _AllGather.apply(torch.cat([tensor, padding]))
    return torch.cat([part[:size] for part, size in zip(gathered, shards.sizes)])
