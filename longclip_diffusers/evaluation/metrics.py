"""Retrieval recall and classification accuracy from features: pure tensor maths, no I/O.

Conventions (docs/evaluation.md):

- Image-to-text: an image is a hit at k when ANY of its captions is among its k best texts
  (COCO and Flickr30k have 5 captions per image; Urban-1k, ShareGPT4V-1k and Long-DCI one).
- Text-to-image: a caption is a hit at k when its own image is among its k best images.
- Ties count against the model: a candidate scoring exactly as high as the best positive ranks
  above it, so a constant similarity matrix scores 0 instead of a flattering 1.

Values are fractions in [0, 1]; tables print them as percentages like the papers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import InvalidArgumentError

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


def image_to_text_ranks(similarity: torch.Tensor, text_to_image: torch.Tensor, first_image: int = 0) -> torch.Tensor:
    """Rank (0 = first place) of each image's best-scoring own caption.

    ``similarity`` is ``[images, texts]`` for the images ``first_image, first_image + 1, ...``;
    ``text_to_image[j]`` is the image index of caption ``j``.
    """
    images = torch.arange(first_image, first_image + similarity.shape[0], device=similarity.device)
    positives = text_to_image.to(similarity.device).unsqueeze(0) == images.unsqueeze(1)
    return _best_positive_ranks(similarity, positives)


def text_to_image_ranks(similarity: torch.Tensor, own_images: torch.Tensor) -> torch.Tensor:
    """Rank (0 = first place) of each caption's own image.

    ``similarity`` is ``[texts, images]``; ``own_images[i]`` is the image of caption ``i``.
    """
    images = torch.arange(similarity.shape[1], device=similarity.device)
    positives = images.unsqueeze(0) == own_images.to(similarity.device).unsqueeze(1)
    return _best_positive_ranks(similarity, positives)


def _best_positive_ranks(scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    scores = scores.float()
    best = scores.masked_fill(~positives, float("-inf")).amax(dim=1, keepdim=True)
    return (scores.masked_fill(positives, float("-inf")) >= best).sum(dim=1)


def recall_from_ranks(ranks: torch.Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """``{"R@k": fraction of ranks below k}`` for each k."""
    return {f"R@{k}": (ranks < k).double().mean().item() for k in ks}


def recall_at_k(
    similarity: torch.Tensor, text_to_image: torch.Tensor | Sequence[int], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, dict[str, float]]:
    """Recall@k in both directions from a full ``[images, texts]`` similarity matrix.

    ``text_to_image[j]`` (a tensor or a list of ints) is the image index of caption ``j``.

    Returns ``{"image_to_text": {"R@1": ...}, "text_to_image": {...}}``.
    """
    text_to_image = _check_assignment(text_to_image, *similarity.shape)
    return {
        "image_to_text": recall_from_ranks(image_to_text_ranks(similarity, text_to_image), ks),
        "text_to_image": recall_from_ranks(text_to_image_ranks(similarity.T, text_to_image), ks),
    }


def feature_recall_at_k(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_to_image: torch.Tensor | Sequence[int],
    ks: Sequence[int] = DEFAULT_KS,
    chunk_size: int = 1024,
) -> dict[str, dict[str, float]]:
    """:func:`recall_at_k` of the dot products of (normalised) features, computed in row chunks
    so the full matrix is never held (Flickr30k's 31.8k x 159k would take 20 GB)."""
    text_to_image = _check_assignment(text_to_image, len(image_features), len(text_features))
    i2t = [
        image_to_text_ranks(image_features[s : s + chunk_size] @ text_features.T, text_to_image, s)
        for s in range(0, len(image_features), chunk_size)
    ]
    t2i = [
        text_to_image_ranks(text_features[s : s + chunk_size] @ image_features.T, text_to_image[s : s + chunk_size])
        for s in range(0, len(text_features), chunk_size)
    ]
    return {
        "image_to_text": recall_from_ranks(torch.cat(i2t), ks),
        "text_to_image": recall_from_ranks(torch.cat(t2i), ks),
    }


def _check_assignment(text_to_image: torch.Tensor | Sequence[int], num_images: int, num_texts: int) -> torch.Tensor:
    text_to_image = torch.as_tensor(text_to_image, dtype=torch.long)
    if text_to_image.shape != (num_texts,):
        raise InvalidArgumentError(
            f"text_to_image has shape {tuple(text_to_image.shape)} but there are {num_texts} "
            "texts: give one image index per caption"
        )
    if num_texts and (text_to_image.min() < 0 or text_to_image.max() >= num_images):
        raise InvalidArgumentError(f"text_to_image holds indices outside 0..{num_images - 1}")
    if torch.bincount(text_to_image, minlength=num_images).eq(0).any():
        raise InvalidArgumentError("some images have no caption: drop them from the data set or give each a caption")
    return text_to_image


def topk_accuracy(
    image_features: torch.Tensor,
    class_features: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Zero-shot top-k accuracy: ``{"top1": ..., "top5": ...}``.

    CLIP scores classes with ``100 * image @ class.T`` (docs/evaluation.md); the positive
    scale changes no ranking, so plain dot products are used. Ties count against the model.
    """
    labels = torch.as_tensor(labels, dtype=torch.long, device=image_features.device)
    scores = image_features.float() @ class_features.float().T
    own = scores.gather(1, labels.unsqueeze(1))
    ranks = (scores >= own).sum(dim=1) - 1
    return {f"top{k}": (ranks < k).double().mean().item() for k in ks if k <= scores.shape[1]}
