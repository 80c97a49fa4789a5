"""Long-CLIP fine-tuning: the loss, data, model set-up and checkpoint pieces, reused by
``training/train_longclip.py`` and TULIP's trainers.

The loss functions are pure and importable on their own::

    from longclip_diffusers.training import pcm_loss, pca_reconstruct, clip_contrastive_loss
"""

from ..io.image_preprocessing import ClipImageTransform
from .checkpointing import TrainingProgress, latest_checkpoint, save_checkpoint, track_progress
from .config import (
    add_contrastive_loss_arguments,
    add_data_arguments,
    add_optimization_arguments,
    add_run_arguments,
    build_longclip_parser,
    check_training_args,
)
from .data import CaptionBatchCollator, CaptionTokens, ImageCaptionDataset, ShardedBatchSampler
from .feature_cache import CachedFeatureDataset, FeatureCache, cache_image_features
from .features import ClipFeatures, ContrastiveFeatures
from .gather import BatchShards, gather_with_grad
from .gradient_cache import contrastive_backward
from .loop import (
    RunData,
    TrainResult,
    after_step,
    epoch_batches,
    finish_run,
    make_accelerator,
    optimizer_step,
    plan_run_data,
    prepare_run,
    run_on_main,
    run_then_teardown,
    run_training_steps,
    total_training_steps,
    train_contrastive,
    write_summary,
)
from .losses import (
    PcmLoss,
    clip_contrastive_loss,
    contrastive_logits,
    grouped_pca_reconstruct,
    pca_reconstruct,
    pcm_loss,
)
from .memory_plan import MemoryPlan, memory_plan
from .model_setup import freeze_leading_positions, merge_position_table, prepare_longclip_model, restore_export_layout
from .records import CaptionRecord, first_sentence, read_records
from .shards import ShardSet, ShardStream, write_shards
from .text_only import TextOnlyClip, load_text_only_clip
from .trimmed_text import encode_text, trim_to_longest

__all__ = [
    "BatchShards",
    "CachedFeatureDataset",
    "CaptionBatchCollator",
    "CaptionRecord",
    "CaptionTokens",
    "ClipFeatures",
    "ClipImageTransform",
    "ContrastiveFeatures",
    "FeatureCache",
    "ImageCaptionDataset",
    "MemoryPlan",
    "PcmLoss",
    "RunData",
    "ShardSet",
    "ShardStream",
    "ShardedBatchSampler",
    "TextOnlyClip",
    "TrainResult",
    "TrainingProgress",
    "add_contrastive_loss_arguments",
    "after_step",
    "add_data_arguments",
    "add_optimization_arguments",
    "add_run_arguments",
    "build_longclip_parser",
    "cache_image_features",
    "check_training_args",
    "clip_contrastive_loss",
    "contrastive_backward",
    "contrastive_logits",
    "encode_text",
    "epoch_batches",
    "finish_run",
    "first_sentence",
    "freeze_leading_positions",
    "gather_with_grad",
    "grouped_pca_reconstruct",
    "latest_checkpoint",
    "load_text_only_clip",
    "make_accelerator",
    "memory_plan",
    "merge_position_table",
    "optimizer_step",
    "pca_reconstruct",
    "pcm_loss",
    "plan_run_data",
    "prepare_longclip_model",
    "prepare_run",
    "read_records",
    "restore_export_layout",
    "run_on_main",
    "run_then_teardown",
    "run_training_steps",
    "save_checkpoint",
    "total_training_steps",
    "track_progress",
    "train_contrastive",
    "trim_to_longest",
    "write_shards",
    "write_summary",
]
