"""Scoring generated images against their prompts with a CLIP-like judge (docs/generation-eval.md).

Three scores per image, all from the judge's L2-normalised features:

* ``whole_prompt_cosine``: the image against the full prompt (cut at what the judge reads);
* ``sentence_cosine``: the mean over the prompt's sentences of the image against each sentence
  alone, so a detail late in a long prompt weighs as much as the opening one;
* ``sentence_share``: the share of those sentences that the image matches better than an image
  the same pipeline made, with the same seed, for another prompt (:func:`~.statistics.shuffled_partners`).
  0.5 is chance; it needs two prompts or more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .models import EvalModel
from .preprocessing import image_transform_for
from .statistics import sentence_share, shuffled_partners, split_sentences

#: The judge's per-image scores, in the order reports list them.
SCORES: tuple[str, ...] = ("whole_prompt_cosine", "sentence_cosine", "sentence_share")


@dataclass
class JudgeScores:
    """Scores of the images ``[pipelines, prompts, seeds]``; ``sentence_share`` is None with a
    single prompt. ``sentences[p]`` are prompt ``p``'s sentences, ``partner[p]`` the prompt whose
    images its sentences were also scored against, ``truncated[p]`` whether the judge read only
    part of prompt ``p``."""

    whole_prompt_cosine: np.ndarray
    sentence_cosine: np.ndarray
    sentence_share: np.ndarray | None
    sentences: list[list[str]]
    partner: list[int] | None
    truncated: list[bool]

    def score(self, name: str) -> np.ndarray | None:
        """The ``[pipelines, prompts, seeds]`` array of the score called ``name`` (:data:`SCORES`)."""
        return getattr(self, name)


def score_images(
    judge: EvalModel,
    prompts: Sequence[str],
    images: Sequence[Sequence[Sequence[str | Path | Image.Image]]],
    *,
    shuffle_seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> JudgeScores:
    """Score ``images[pipeline][prompt][seed]`` against ``prompts`` with ``judge``."""
    pipelines, count, seeds = len(images), len(prompts), len(images[0][0])
    flat = [image for per_pipeline in images for per_prompt in per_pipeline for image in per_prompt]
    image_features = judge.encode_images(flat, batch_size=batch_size, progress=progress).numpy()
    image_features = image_features.reshape(pipelines, count, seeds, -1)
    prompt_features = judge.encode_texts(prompts, batch_size=batch_size, progress=progress).numpy()

    sentences = [split_sentences(prompt) or [prompt] for prompt in prompts]
    flat_sentences = [sentence for per_prompt in sentences for sentence in per_prompt]
    sentence_features = judge.encode_texts(flat_sentences, batch_size=batch_size, progress=progress).numpy()
    starts = np.cumsum([0] + [len(per_prompt) for per_prompt in sentences])

    partner = shuffled_partners(count, shuffle_seed).tolist() if count > 1 else None
    whole = np.einsum("kpse,pe->kps", image_features, prompt_features)
    sentence_mean = np.empty_like(whole)
    share = np.empty_like(whole) if partner is not None else None
    for p in range(count):
        own_sentences = sentence_features[starts[p] : starts[p + 1]]
        own = image_features[:, p] @ own_sentences.T  # [pipelines, seeds, sentences]
        sentence_mean[:, p] = own.mean(axis=-1)
        if share is not None and partner is not None:
            share[:, p] = sentence_share(own, image_features[:, partner[p]] @ own_sentences.T)
    tokenizer: Any = judge.tokenizer
    lengths = [len(ids) for ids in tokenizer(list(prompts), verbose=False)["input_ids"]]
    return JudgeScores(
        whole_prompt_cosine=whole,
        sentence_cosine=sentence_mean,
        sentence_share=share,
        sentences=sentences,
        partner=partner,
        truncated=[length > judge.max_length for length in lengths],
    )


def tiny_random_judge(seed: int = 0) -> EvalModel:
    """A tiny random Long-CLIP-shaped judge (248 positions, 32 px images), built in code: for
    ``eval generation --tiny-random``, whose numbers mean nothing."""
    from ..tiny import tiny_clip_model, tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer(248)
    model = tiny_clip_model(seed=seed, max_position_embeddings=248, tokenizer=tokenizer)
    return EvalModel("tiny random judge", model, tokenizer, image_transform_for(model))
