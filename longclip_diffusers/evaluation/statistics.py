"""The statistics of the generation evaluation (docs/generation-eval.md): splitting a prompt into
sentences, the shuffled partner each prompt's images are compared with, the share of sentences
an image matches better than its partner's, and paired bootstrap confidence intervals."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from ..errors import InvalidArgumentError

# A sentence ends at . ! or ? (closing quotes and brackets stay with it) before white space,
# and at a line break.
_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)|\n")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped, in order, each with its end punctuation.

    A full stop followed by a lowercase word does not end a sentence (``"e.g. a dog"``); pieces
    without a letter or digit are dropped. Text without an end mark is one sentence.
    """
    pieces, start = [], 0
    for match in _BOUNDARY.finditer(text):
        following = text[match.end() :].lstrip()
        if match.group() != "\n" and following[:1].islower():
            continue
        pieces.append(text[start : match.end()])
        start = match.end()
    pieces.append(text[start:])
    return [piece.strip() for piece in pieces if any(char.isalnum() for char in piece)]


def shuffled_partners(count: int, seed: int = 0) -> np.ndarray:
    """``partner[i] != i`` for every ``i < count``: a random derangement (one cycle through a
    seeded shuffle), so every prompt's images are compared with another prompt's."""
    if count < 2:
        raise InvalidArgumentError(f"a partner needs another prompt; got {count} prompt(s)")
    order = np.random.default_rng(seed).permutation(count)
    partner = np.empty(count, dtype=int)
    partner[order] = np.roll(order, -1)
    return partner


def sentence_share(own: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Share of sentences (last axis) whose cosine with an image (``own``) beats their cosine
    with another image (``other``); a tie counts half, so two equal images score 0.5."""
    own, other = np.asarray(own, dtype=float), np.asarray(other, dtype=float)
    return ((own > other) + 0.5 * (own == other)).mean(axis=-1)


def paired_bootstrap(
    values: Mapping[str, np.ndarray],
    *,
    baseline: str | None = None,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 250,
) -> dict[str, dict]:
    """Mean and percentile confidence interval of each entry of ``values``, and of its difference
    from ``baseline``, by a two-stage bootstrap paired across entries.

    Each entry is a ``[prompts, seeds]`` array of per-image scores, the same prompts and seeds
    for every entry. A resample draws prompts with replacement, then seeds with replacement
    within each drawn prompt (two-stage resampling of clustered data: Davison and Hinkley,
    *Bootstrap Methods and their Application*, 1997, section 3.8), and applies the same draws to
    every entry: the differences are paired, so what every pipeline shares (a hard prompt, a
    bad seed) cancels in them.

    Returns ``{name: {"mean", "ci": [low, high], "delta": {"mean", "ci", "above_zero"}}}``;
    ``delta`` (``above_zero``: the share of resamples where the entry beats the baseline) is
    absent for the baseline itself and when no baseline is given.
    """
    arrays = {name: np.asarray(array, dtype=float) for name, array in values.items()}
    shapes = {array.shape for array in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise InvalidArgumentError(
            f"every entry must be one [prompts, seeds] array of the same shape; got {sorted(shapes)}"
        )
    if baseline is not None and baseline not in arrays:
        raise InvalidArgumentError(f"baseline {baseline!r} is not among {', '.join(arrays)}")
    if not 0 < confidence < 1:
        raise InvalidArgumentError(f"confidence must be between 0 and 1; got {confidence}")
    prompts, seeds = next(iter(shapes))
    # separate streams: the prompts drawn do not depend on how many seeds there are
    prompt_rng, seed_rng = (np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(2))
    means: dict[str, list[np.ndarray]] = {name: [] for name in arrays}
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        prompt_draws = prompt_rng.integers(0, prompts, (size, prompts))[:, :, None]
        seed_draws = seed_rng.integers(0, seeds, (size, prompts, seeds))
        for name, array in arrays.items():
            means[name].append(array[prompt_draws, seed_draws].mean(axis=(1, 2)))
    resampled = {name: np.concatenate(parts) for name, parts in means.items()}
    tail = (1 - confidence) / 2

    def interval(samples: np.ndarray) -> list[float]:
        return [float(np.quantile(samples, tail)), float(np.quantile(samples, 1 - tail))]

    summary: dict[str, dict] = {}
    for name, array in arrays.items():
        summary[name] = {"mean": float(array.mean()), "ci": interval(resampled[name])}
        if baseline is not None and name != baseline:
            difference = resampled[name] - resampled[baseline]
            summary[name]["delta"] = {
                "mean": float(array.mean() - arrays[baseline].mean()),
                "ci": interval(difference),
                "above_zero": float((difference > 0).mean()),
            }
    return summary
