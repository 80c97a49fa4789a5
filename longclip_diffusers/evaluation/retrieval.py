"""Image-text retrieval: encode a data set with a model and score recall@k both ways."""

from __future__ import annotations

from collections.abc import Sequence

from .metrics import DEFAULT_KS, feature_recall_at_k
from .models import EvalModel
from .retrieval_datasets import RetrievalDataset


def evaluate_retrieval(
    model: EvalModel,
    dataset: RetrievalDataset,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    max_length: int | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> dict:
    """Recall@k (fractions) image-to-text and text-to-image of ``model`` on ``dataset``.

    Captions are tokenized at the model's own length (77 for CLIP, 248 for Long-CLIP) unless
    ``max_length`` asks for a shorter cut. Returns a JSON-ready dict.
    """
    length = min(max_length or model.max_length, model.max_length)
    images = model.encode_images(
        dataset.image_paths, batch_size=batch_size, num_workers=num_workers, progress=progress
    )
    texts = model.encode_texts(dataset.captions, max_length=length, batch_size=batch_size, progress=progress)
    return {
        "model": model.name,
        "dataset": dataset.name,
        "num_images": len(dataset.image_paths),
        "num_texts": len(dataset.captions),
        "max_length": length,
        **feature_recall_at_k(images, texts, dataset.text_to_image, ks),
    }
