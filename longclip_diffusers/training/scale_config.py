"""Command-line options for training at scale (Long-CLIP-G: OpenCLIP ViT-bigG/14 on one GPU):
cached image features, gradient caching, tar-shard input, the export kind and the memory plan.

Kept apart from :mod:`.config` so each trainer opts in; :func:`check_scale_args` turns impossible
combinations into one clear error.
"""

from __future__ import annotations

import argparse
import os

from ..errors import InvalidArgumentError

#: What the trainer writes: the whole ``CLIPModel``, or the text encoder with its projection
#: (what SDXL's ``text_encoder_2`` slot takes); ``auto`` is the text encoder when the vision
#: tower was never loaded (``--image-features``), the whole model otherwise.
EXPORT_KINDS = ("auto", "clip-model", "text-encoder")


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale (large models and batches)")
    group.add_argument(
        "--image-features",
        default=None,
        metavar="DIR",
        help="image features written by cache-image-features for this --data and --base-model: the "
        "vision tower is never loaded (needs --freeze-vision)",
    )
    group.add_argument(
        "--micro-batch",
        type=int,
        default=None,
        metavar="N",
        help="gradient caching: run the towers N rows at a time, with the gradients of the whole "
        "contrastive batch (default: the whole per-process batch in one pass)",
    )
    group.add_argument(
        "--export",
        choices=EXPORT_KINDS,
        default="auto",
        help="write the whole CLIPModel, or the text encoder with projection (SDXL's text_encoder_2 "
        "slot); auto: the text encoder with --image-features, else the whole model",
    )
    plan = parser.add_argument_group("memory plan")
    plan.add_argument(
        "--dry-run",
        action="store_true",
        help="print the memory plan per process (parameters, gradients, optimizer, activations) for these "
        "arguments and exit: nothing is trained, written or downloaded beyond the model's config",
    )
    plan.add_argument(
        "--gpu-memory", type=float, default=None, metavar="GIB", help="memory of one GPU, to say whether the plan fits"
    )
    plan.add_argument(
        "--plan-processes",
        type=int,
        default=None,
        metavar="N",
        help="processes the plan is for (default: the launcher's WORLD_SIZE, else 1)",
    )
    plan.add_argument(
        "--plan-sharding",
        choices=("none", "fsdp"),
        default=None,
        help="plan for DDP (every process holds everything) or FSDP full sharding (default: fsdp when "
        "accelerate launch runs with an FSDP config, else none)",
    )


def check_scale_args(args: argparse.Namespace) -> argparse.Namespace:
    """Refuse impossible combinations of the scale options, each message naming the fix, and
    fill the plan's defaults from the launcher."""
    if args.micro_batch is not None and args.micro_batch <= 0:
        raise InvalidArgumentError(f"--micro-batch must be positive; got {args.micro_batch}")
    if args.micro_batch is not None and args.micro_batch > args.batch_size:
        raise InvalidArgumentError(
            f"--micro-batch {args.micro_batch} is larger than --batch-size {args.batch_size}; "
            "pass at most the per-process batch"
        )
    if args.image_features is not None and not args.freeze_vision:
        raise InvalidArgumentError(
            "--image-features holds the features of a frozen vision tower; add --freeze-vision "
            "(or drop --image-features to train the vision tower too)"
        )
    if args.image_features is not None and args.export == "clip-model":
        raise InvalidArgumentError(
            "--export clip-model needs the vision tower, which --image-features never loads; "
            "use --export text-encoder (or auto)"
        )
    if args.gpu_memory is not None and args.gpu_memory <= 0:
        raise InvalidArgumentError(f"--gpu-memory must be positive; got {args.gpu_memory}")
    if args.plan_processes is None:
        args.plan_processes = int(os.environ.get("WORLD_SIZE", "1"))
    if args.plan_processes <= 0:
        raise InvalidArgumentError(f"--plan-processes must be positive; got {args.plan_processes}")
    if args.plan_sharding is None:
        fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true", "yes")
        args.plan_sharding = "fsdp" if fsdp else "none"
    return args


def export_kind(args: argparse.Namespace) -> str:
    """``clip-model`` or ``text-encoder``, with ``auto`` decided (see :data:`EXPORT_KINDS`)."""
    if args.export != "auto":
        return args.export
    return "text-encoder" if args.image_features is not None else "clip-model"
