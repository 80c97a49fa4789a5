"""AdamW and the warm-up + cosine schedule of the released recipe (docs/pcm-loss.md)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import get_cosine_schedule_with_warmup


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay only matrices: biases, LayerNorm gains and the logit scale (tensors under 2-D) are
    left undecayed, the CLIP/OpenCLIP convention the released trainer follows."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up for ``warmup_steps``, then cosine decay to 0 at ``total_steps``; stepped
    once per optimizer step."""
    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, max(total_steps, 1))
