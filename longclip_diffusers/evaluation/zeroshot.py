"""Zero-shot classification with OpenAI's 80 ImageNet prompt templates (docs/evaluation.md):
a class's embedding is the normalised mean of its normalised template embeddings, and an image
takes the class with the highest similarity."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .classification_datasets import ClassificationDataset
from .metrics import topk_accuracy
from .models import EvalModel

#: The 80 prompt templates of OpenAI's CLIP ImageNet zero-shot evaluation, in their order.
OPENAI_IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)


def average_template_embeddings(template_features: torch.Tensor) -> torch.Tensor:
    """``[classes, templates, E]`` features -> ``[classes, E]`` class embeddings: each template
    feature normalised, averaged over templates, normalised again."""
    return F.normalize(F.normalize(template_features, dim=-1).mean(dim=1), dim=-1)


def zeroshot_classifier(
    model: EvalModel,
    classnames: Sequence[str],
    templates: Sequence[str] = OPENAI_IMAGENET_TEMPLATES,
    *,
    batch_size: int = 256,
    progress: bool = True,
) -> torch.Tensor:
    """``[len(classnames), E]`` class embeddings built from ``templates`` (each with one ``{}``)."""
    per_class = [
        model.encode_texts([t.format(name) for t in templates], batch_size=batch_size, progress=False)
        for name in tqdm(classnames, desc="classes", disable=not progress)
    ]
    return average_template_embeddings(torch.stack(per_class))


def evaluate_zeroshot(
    model: EvalModel,
    dataset: ClassificationDataset,
    *,
    templates: Sequence[str] = OPENAI_IMAGENET_TEMPLATES,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> dict:
    """Top-1 and top-5 zero-shot accuracy (fractions) of ``model`` on ``dataset``."""
    classes = zeroshot_classifier(model, dataset.classnames, templates, progress=progress)
    images = model.encode_images(dataset.images, batch_size=batch_size, num_workers=num_workers, progress=progress)
    return {
        "model": model.name,
        "dataset": dataset.name,
        "num_images": len(dataset),
        "num_classes": len(dataset.classnames),
        "num_templates": len(templates),
        **topk_accuracy(images, classes, torch.tensor(dataset.labels), ks=(1, 5)),
    }
