"""The optimisation schedule of one training run of the toy experiment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """AdamW with linear warm-up then cosine decay: ``steps`` optimizer steps of
    ``batch_size`` images at peak learning rate ``lr``; ``seed`` fixes initialisation and order."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    seed: int = 0
