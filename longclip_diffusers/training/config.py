"""Command-line arguments of the contrastive trainers (Long-CLIP here, TULIP's stage 2 too).

Groups are separate functions so another trainer takes the ones it needs with its own
defaults; :func:`check_training_args` turns impossible combinations into one clear error.
Defaults are Long-CLIP's (paper section 4.1 and the released ``train/train.md``; docs/pcm-loss.md).
"""

from __future__ import annotations

import argparse
import math

from ..errors import InvalidArgumentError
from ..length.stretching import DEFAULT_KEEP, DEFAULT_RATIO
from .data import DEFAULT_MAX_UNREADABLE, UNREADABLE_JUDGED_AFTER
from .losses import DEFAULT_LABEL_SMOOTHING, DEFAULT_PCA_DIM, DEFAULT_SHORT_LOSS_WEIGHT
from .scale_config import add_scale_arguments

#: What ``--data`` takes in every trainer.
CAPTION_FILE_HELP = "ShareGPT4V .json, or .json/.jsonl/.csv with image, caption and optional short_caption"


def add_data_arguments(parser: argparse.ArgumentParser, data_help: str = CAPTION_FILE_HELP) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        required=True,
        help=data_help,
    )
    group.add_argument(
        "--image-root", default=None, help="folder the image paths are relative to (default: as written)"
    )
    group.add_argument(
        "--max-unreadable",
        type=share,
        default=DEFAULT_MAX_UNREADABLE,
        metavar="SHARE",
        help="stop when more than this share of the images read so far cannot be read (judged from "
        f"{UNREADABLE_JUDGED_AFTER} images read on; default {DEFAULT_MAX_UNREADABLE:g}); the run stops "
        "anyway when none can be read",
    )
    group.add_argument(
        "--num-workers",
        type=int,
        default=4,
        help="DataLoader worker processes decoding images (0: decode in the training process)",
    )
    group.add_argument(
        "--validation-size",
        type=int,
        default=0,
        help="hold out the first N pairs and report retrieval R@1 on them (the paper holds out 1000)",
    )
    group.add_argument(
        "--validate-every", type=int, default=0, help="also validate every N steps (0: only at the end)"
    )


def share(text: str) -> float:
    """argparse type of ``--max-unreadable``: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; pass a share such as 0.05") from None
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise argparse.ArgumentTypeError(f"a share is between 0 and 1; got {text}")
    return value


def add_optimization_arguments(
    parser: argparse.ArgumentParser,
    *,
    lr: float = 1e-6,
    weight_decay: float = 0.01,
    warmup_steps: int = 200,
    batch_size: int = 128,
) -> None:
    group = parser.add_argument_group("optimisation")
    group.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        help=f"images per process per step (default {batch_size}; the global batch is this times the number of processes)",
    )
    group.add_argument("--lr", type=float, default=lr, help=f"AdamW peak learning rate (default {lr})")
    group.add_argument(
        "--weight-decay",
        type=float,
        default=weight_decay,
        help=f"AdamW weight decay on weight matrices (default {weight_decay})",
    )
    group.add_argument("--adam-betas", type=float, nargs=2, default=(0.9, 0.999), metavar=("B1", "B2"))
    group.add_argument("--adam-eps", type=float, default=1e-8)
    group.add_argument(
        "--warmup-steps",
        type=int,
        default=warmup_steps,
        help=f"linear warm-up steps before the cosine decay (default {warmup_steps})",
    )
    length = group.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=int, default=None, help="optimizer steps to train (overrides --epochs)")
    length.add_argument("--epochs", type=int, default=None, help="passes over the data (default 1, as in the paper)")


def add_contrastive_loss_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("loss")
    group.add_argument(
        "--pca-dim",
        type=int,
        default=DEFAULT_PCA_DIM,
        help=f"principal components kept for the short-caption loss (default {DEFAULT_PCA_DIM})",
    )
    group.add_argument(
        "--pca-scope",
        choices=("global", "local"),
        default="global",
        help="PCA over the whole batch across processes (default), or per process as released (local)",
    )
    group.add_argument(
        "--short-loss-weight",
        type=float,
        default=DEFAULT_SHORT_LOSS_WEIGHT,
        help="weight of the short-caption loss (default 1; 0 trains on long captions only)",
    )
    group.add_argument(
        "--label-smoothing",
        type=float,
        default=DEFAULT_LABEL_SMOOTHING,
        help=f"label smoothing of both cross-entropies (default {DEFAULT_LABEL_SMOOTHING})",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument(
        "--output-dir",
        required=True,
        help="final model goes here; checkpoints under OUTPUT_DIR/checkpoints, logs under OUTPUT_DIR/logs",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished model, or another run's checkpoints, already in OUTPUT_DIR",
    )
    group.add_argument(
        "--resume-from",
        default=None,
        help="checkpoint folder to resume from, or 'latest' (newest under OUTPUT_DIR/checkpoints)",
    )
    group.add_argument(
        "--save-every", type=int, default=0, help="save a resumable checkpoint every N steps (0: never)"
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the data order and of torch")
    group.add_argument(
        "--mixed-precision",
        choices=("no", "fp16", "bf16"),
        default=None,
        help="autocast precision (default: bf16 on GPU, no on CPU)",
    )
    group.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass to save memory",
    )
    group.add_argument("--cpu", action="store_true", help="train on CPU even when a GPU is present")
    group.add_argument(
        "--report-to",
        default="tensorboard",
        help="tracker for loss curves, as accelerate names them (tensorboard, wandb, ...), or 'none'",
    )
    group.add_argument("--log-every", type=int, default=10, help="log the loss every N steps")


def build_longclip_parser() -> argparse.ArgumentParser:
    """All arguments of ``training/train_longclip.py``."""
    parser = argparse.ArgumentParser(
        description="Fine-tune a CLIP model into a Long-CLIP model (knowledge-preserved stretching + primary component matching).",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--base-model",
        required=True,
        help="transformers CLIPModel folder or hub id, or an OpenAI-layout .pt/.safetensors file",
    )
    model.add_argument("--tokenizer", default=None, help="tokenizer folder or hub id (default: the base model's)")
    model.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        help=f"leading positions kept as they are and frozen (default {DEFAULT_KEEP}; 0 = plain interpolation)",
    )
    model.add_argument(
        "--ratio",
        type=float,
        default=DEFAULT_RATIO,
        help=f"stretch ratio of the other positions (default {DEFAULT_RATIO}: 77 -> 248; 1 keeps the length); a base with more than 77 positions, already a Long-CLIP, is not stretched again",
    )
    model.add_argument("--freeze-vision", action="store_true", help="train the text side only")
    add_data_arguments(
        parser,
        CAPTION_FILE_HELP + ", or WebDataset tar shards ('shards/{00000..00999}.tar': an image and a "
        "caption .json per sample; make-shards writes them)",
    )
    add_optimization_arguments(parser)
    add_contrastive_loss_arguments(parser)
    add_run_arguments(parser)
    add_scale_arguments(parser)
    return parser


def check_training_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill derived defaults and refuse impossible values (each message names the fix)."""
    positive = {"batch_size": "--batch-size", "lr": "--lr", "pca_dim": "--pca-dim"}
    for name, flag in positive.items():
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise InvalidArgumentError(f"{flag} must be positive; got {value}")
    not_negative = {
        "weight_decay": "--weight-decay",
        "warmup_steps": "--warmup-steps",
        "save_every": "--save-every",
        "num_workers": "--num-workers",
        "validation_size": "--validation-size",
        "validate_every": "--validate-every",
        "short_loss_weight": "--short-loss-weight",
    }
    for name, flag in not_negative.items():
        if getattr(args, name, 0) < 0:
            raise InvalidArgumentError(f"{flag} must be 0 or more; got {getattr(args, name)}")
    if not 0 <= getattr(args, "label_smoothing", 0) < 1:
        raise InvalidArgumentError(f"--label-smoothing must be in [0, 1); got {args.label_smoothing}")
    if args.max_steps is not None and args.max_steps <= 0:
        raise InvalidArgumentError(f"--max-steps must be positive; got {args.max_steps}")
    if args.epochs is not None and args.epochs <= 0:
        raise InvalidArgumentError(f"--epochs must be positive; got {args.epochs}")
    if args.max_steps is None and args.epochs is None:
        args.epochs = 1
    if args.log_every <= 0:
        raise InvalidArgumentError(f"--log-every must be positive; got {args.log_every}")
    return args
