"""The paper's predictions for the toy ablation, checked against measured metrics.

Long-CLIP (ECCV 2024) predicts that the full method beats the short-context base on long
captions (its Urban-200 / ShareGPT4V results) and, thanks to primary component matching, does not
lose short-caption and zero-shot ability compared with direct fine-tuning (its Table 4 ablation:
B/16 ImageNet 55.1 without KPS and PCM, 66.8 with both; docs/evaluation.md).

A difference smaller than twice its binomial standard error on the held-out set is flagged as
within noise: with a few hundred test scenes, one or two points can come from chance alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    """``better`` against ``worse`` on one metric (fractions)."""

    metric: str
    better: float
    worse: float
    standard_error: float

    @property
    def difference(self) -> float:
        return self.better - self.worse

    @property
    def within_noise(self) -> bool:
        return abs(self.difference) < 2 * self.standard_error


@dataclass(frozen=True)
class Claim:
    """One prediction: ``arm`` against ``reference`` on ``metrics``; ``strict`` asks for
    "above", otherwise "not below"."""

    name: str
    arm: str
    reference: str
    metrics: tuple[str, ...]
    strict: bool
    comparisons: tuple[Comparison, ...]

    @property
    def holds(self) -> bool:
        if self.strict:
            return all(c.difference > 0 for c in self.comparisons)
        return all(c.difference >= 0 for c in self.comparisons)

    @property
    def verdict(self) -> str:
        noisy = [c.metric for c in self.comparisons if c.within_noise]
        word = "reproduced" if self.holds else "NOT reproduced"
        return word + (f" (within noise on {', '.join(noisy)})" if noisy else "")


#: (name, arm, reference, metrics, strict) of each prediction.
PREDICTIONS: tuple[tuple[str, str, str, tuple[str, ...], bool], ...] = (
    ("full method above the base on long captions", "kps_pcm", "base", ("long_i2t_r1", "long_t2i_r1"), True),
    (
        "full method not below direct fine-tuning on short captions",
        "kps_pcm",
        "direct_ft",
        ("short_i2t_r1", "short_t2i_r1"),
        False,
    ),
    (
        "full method not below direct fine-tuning in zero-shot accuracy",
        "kps_pcm",
        "direct_ft",
        ("zeroshot_acc",),
        False,
    ),
)


def check_claims(metrics: dict[str, dict[str, float]], num_test: int) -> list[Claim]:
    """Evaluate :data:`PREDICTIONS` on per-arm ``metrics`` measured on ``num_test`` scenes."""
    claims = []
    for name, arm, reference, names, strict in PREDICTIONS:
        comparisons = tuple(
            Comparison(
                metric=m,
                better=metrics[arm][m],
                worse=metrics[reference][m],
                standard_error=_difference_standard_error(metrics[arm][m], metrics[reference][m], num_test),
            )
            for m in names
        )
        claims.append(Claim(name, arm, reference, names, strict, comparisons))
    return claims


def _difference_standard_error(p: float, q: float, n: int) -> float:
    """Standard error of ``p - q`` for two rates measured on ``n`` items each (independent
    binomials: conservative-ish for two models tested on the same items)."""
    return math.sqrt((p * (1 - p) + q * (1 - q)) / max(n, 1))
