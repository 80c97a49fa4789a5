"""``longclip-diffusers cache-image-features``: run a frozen vision tower once over the training
data and keep its image features, so that ``train_longclip.py --freeze-vision --image-features
DIR`` never loads the vision tower (:mod:`longclip_diffusers.training.feature_cache`).

Several processes share the work when launched with ``accelerate launch`` (GPUs) or ``torchrun``
(CPU processes)::

    accelerate launch training/cache_image_features.py --base-model M --data D --output-dir DIR
"""

from __future__ import annotations

import argparse

from ..errors import InvalidArgumentError

DESCRIPTION = """\
Compute the image features of --base-model's vision tower for every sample of --data (a caption
file with --image-root, or WebDataset tar shards) and write them to OUTPUT_DIR: float16 by
default, one file per unit (SAMPLES_PER_SHARD pairs of a caption file, or one tar shard), with
the data order, the skipped images and the SHA-256 of the vision weights. Units already written
are kept: run the same command again to finish an interrupted cache."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cache-image-features",
        help="cache the image features of a frozen vision tower for --image-features training",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-model", required=True, help="the CLIP model training will start from")
    parser.add_argument(
        "--data",
        required=True,
        help="the training --data: a .json/.jsonl/.csv caption file or tar shards ('shards/{00000..00099}.tar')",
    )
    parser.add_argument("--image-root", default=None, help="folder the caption file's image paths are relative to")
    parser.add_argument("--output-dir", required=True, help="cache folder (pass it to --image-features)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per vision pass (default %(default)s)")
    parser.add_argument(
        "--samples-per-shard",
        type=int,
        default=10_000,
        help="pairs of a caption file per cache file (default %(default)s; tar input: one file per shard)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default="float16",
        help="storage dtype of the features (default %(default)s; float32 keeps them exact)",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=("no", "fp16", "bf16"),
        default=None,
        help="autocast of the vision pass; use the training run's (default: bf16 on GPU, no on CPU)",
    )
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers decoding images")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is present")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a cache of other inputs in OUTPUT_DIR (else it is refused)"
    )


def run(args: argparse.Namespace) -> int:
    from ..training.feature_cache import cache_image_features
    from ..training.loop import run_then_teardown

    if args.batch_size <= 0 or args.num_workers < 0:
        raise InvalidArgumentError("--batch-size must be positive and --num-workers 0 or more")
    return run_then_teardown(lambda _: cache_image_features(args), args)
