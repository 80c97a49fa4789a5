"""Evaluation of CLIP-like models: retrieval recall, zero-shot accuracy, the effective-length
curve (docs/evaluation.md). Maths in :mod:`.metrics`, data layouts in the ``*_datasets``
modules, feature extraction in :mod:`.features`. Images generated from long prompts, judged by
such a model, are compared in :mod:`.generation` (imported on its own: it builds pipelines)."""

from .classification_datasets import (
    CLASSIFICATION_LOADERS,
    ClassificationDataset,
    load_classification_dataset,
)
from .features import encode_images, encode_texts, text_max_length
from .length_curve import CURVE_LENGTHS, length_curve, plot_length_curve, require_matplotlib, write_length_curve
from .metrics import feature_recall_at_k, recall_at_k, topk_accuracy
from .models import EvalModel, load_eval_model
from .preprocessing import image_transform_for
from .report import length_curve_table, retrieval_table, write_json, zeroshot_table
from .retrieval import evaluate_retrieval
from .retrieval_datasets import RETRIEVAL_LOADERS, RetrievalDataset, load_retrieval_dataset
from .zeroshot import OPENAI_IMAGENET_TEMPLATES, evaluate_zeroshot, zeroshot_classifier

__all__ = [
    "CLASSIFICATION_LOADERS",
    "CURVE_LENGTHS",
    "ClassificationDataset",
    "EvalModel",
    "OPENAI_IMAGENET_TEMPLATES",
    "RETRIEVAL_LOADERS",
    "RetrievalDataset",
    "encode_images",
    "encode_texts",
    "evaluate_retrieval",
    "evaluate_zeroshot",
    "feature_recall_at_k",
    "image_transform_for",
    "length_curve",
    "length_curve_table",
    "load_classification_dataset",
    "load_eval_model",
    "load_retrieval_dataset",
    "plot_length_curve",
    "recall_at_k",
    "require_matplotlib",
    "retrieval_table",
    "text_max_length",
    "topk_accuracy",
    "write_json",
    "write_length_curve",
    "zeroshot_classifier",
    "zeroshot_table",
]
