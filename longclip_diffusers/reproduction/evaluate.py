"""Score one model of the toy experiment on held-out scenes, with the evaluation package's
encoders and metrics: long- and short-caption R@1 in both directions, and zero-shot accuracy on
the colour of the largest object (the toy counterpart of the paper's ImageNet column)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..evaluation.features import encode_images, encode_texts
from ..evaluation.metrics import feature_recall_at_k, topk_accuracy
from ..evaluation.models import load_eval_model
from ..evaluation.zeroshot import zeroshot_classifier
from .scenes import COLOURS, ZERO_SHOT_TEMPLATES, Scene

#: The five numbers reported per arm, in table order.
METRICS = ("long_i2t_r1", "long_t2i_r1", "short_i2t_r1", "short_t2i_r1", "zeroshot_acc")


def evaluate_on_scenes(model_dir: str | Path, scenes: Sequence[Scene], batch_size: int = 256) -> dict[str, float]:
    """The :data:`METRICS` of the ``CLIPModel`` directory ``model_dir`` on ``scenes`` (fractions).

    Captions are cut to the model's own context, as a user of that model would see them: a
    20-token base reads only the start of a long caption.
    """
    model = load_eval_model(model_dir)
    images = encode_images(
        model.model, model.image_transform, [s.image for s in scenes], batch_size=batch_size, progress=False
    )
    own_image = torch.arange(len(scenes))
    scores: dict[str, float] = {}
    for kind in ("long", "short"):
        texts = [s.long_caption if kind == "long" else s.short_caption for s in scenes]
        text_features = encode_texts(model.model, model.tokenizer, texts, batch_size=batch_size, progress=False)
        recall = feature_recall_at_k(images, text_features, own_image, ks=(1,))
        scores[f"{kind}_i2t_r1"] = recall["image_to_text"]["R@1"]
        scores[f"{kind}_t2i_r1"] = recall["text_to_image"]["R@1"]
    colours = list(COLOURS)
    classes = zeroshot_classifier(model, colours, ZERO_SHOT_TEMPLATES, progress=False)
    labels = torch.tensor([colours.index(s.largest_colour) for s in scenes])
    scores["zeroshot_acc"] = topk_accuracy(images, classes, labels, ks=(1,))["top1"]
    return {name: scores[name] for name in METRICS}
