"""``longclip-diffusers make-shards``: a caption file and its image folder as WebDataset tar
shards, the input ``train_longclip.py --data 'shards/{00000..00099}.tar'`` streams
(:mod:`longclip_diffusers.training.shards`)."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Write the pairs of a caption file (ShareGPT4V .json, .json/.jsonl/.csv with image and caption)
into tar shards of SAMPLES_PER_SHARD samples: each sample is the image file as it is (KEY.jpg,
.png, ...) and KEY.json with caption and short_caption. Images that cannot be read are left out
and listed in OUTPUT_DIR/skipped.json. Shards are named 00000.tar, 00001.tar, ...: pass
'OUTPUT_DIR/{00000..NNNNN}.tar' to --data."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "make-shards", help="write a caption file and its images as WebDataset tar shards", description=DESCRIPTION
    )
    parser.add_argument("--data", required=True, help="caption file (.json ShareGPT4V or list, .jsonl, .csv)")
    parser.add_argument("--image-root", default=None, help="folder the image paths are relative to")
    parser.add_argument("--output-dir", required=True, type=Path, help="folder for the shards")
    parser.add_argument(
        "--samples-per-shard", type=int, default=10_000, help="samples per tar file (default %(default)s)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in OUTPUT_DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import OutputExistsError
    from ..training.shards import write_shards

    if not args.overwrite and args.output_dir.is_dir() and any(args.output_dir.glob("*.tar")):
        raise OutputExistsError(
            f"{args.output_dir} already holds tar shards; pick another --output-dir or pass --overwrite"
        )
    shards = write_shards(args.data, args.output_dir, args.image_root, args.samples_per_shard)
    last = len(shards) - 1
    print(f"wrote {len(shards)} shard(s); train with --data '{args.output_dir}/{{{0:05d}..{last:05d}}}.tar'")
    return 0
