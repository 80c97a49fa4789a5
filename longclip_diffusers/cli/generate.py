"""``longclip-diffusers generate``: one image from a long prompt, optionally next to the stock one."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..constants import RECIPES
from ..io.atomic import atomic_write_file, check_output_path
from .options import add_model_sources, add_sampling_options, add_tiny_random


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate an image from a long prompt with Long-CLIP text encoders",
        description="Load an SD1.5 or SDXL pipeline, swap in Long-CLIP text encoders (248 tokens) "
        "and write the image. --compare also writes the stock pipeline's image (same seed) and a "
        "side-by-side sheet. Runs on CUDA, MPS or CPU (float16 on a GPU).",
    )
    parser.add_argument("--prompt", required=True, help="the prompt (up to 246 tokens are read)")
    parser.add_argument("--negative-prompt", default=None, help="what the image should not show")
    add_model_sources(parser)
    add_tiny_random(parser, "for trying the command end to end on any machine, offline")
    add_sampling_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--recipe",
        choices=RECIPES,
        default="standard",
        help="SDXL embedding recipe: diffusers' penultimate layers (standard) or the released "
        "Long-CLIP code's normalised last layers (longclip) (default: %(default)s)",
    )
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the first one available)")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE.png", help="where to write the image")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also write the stock pipeline's image (FILE-stock.png) and a side-by-side sheet (FILE-compare.png)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..drop_in.pipeline_kinds import detect_slots
    from ..drop_in.swap_encoders import apply_long_clip, long_clip_pair
    from ..io.contact_sheet import side_by_side
    from ..length.tokens import token_report

    _check_arguments(args)
    stock, long_clip = load_stock_and_long_clip(args)
    tokenizer = getattr(stock, detect_slots(stock).tokenizer_slots[0])
    print(token_report(args.prompt, tokenizer).summary())

    options = {"recipe": args.recipe, "text_encoder_2": args.long_clip_g}
    if args.compare:
        stock, long = long_clip_pair(stock, long_clip, **options)
    else:
        long = apply_long_clip(stock, long_clip, **options)
    long_image = _generate(long, args)
    written = [_save(long_image, args.out)]
    if args.compare:
        stock_image = _generate(stock, args)
        written.append(_save(stock_image, _sibling(args.out, "stock")))
        sheet = side_by_side([stock_image, long_image], ["stock CLIP (77 tokens)", "Long-CLIP (248 tokens)"])
        written.append(_save(sheet, _sibling(args.out, "compare")))
    for path in written:
        print(f"wrote {path}")
    return 0


def _check_arguments(args: argparse.Namespace) -> None:
    """What would otherwise fail after minutes of generating: the output paths and the device."""
    from ..devices import check_device

    outputs = [args.out, _sibling(args.out, "stock"), _sibling(args.out, "compare")] if args.compare else [args.out]
    for path in outputs:
        check_output_path(path, folder=False, flag="--out")
    if args.device is not None:
        check_device(args.device)


def load_stock_and_long_clip(args: argparse.Namespace):
    """The stock pipeline and the Long-CLIP source of ``args`` (``--tiny-random``, ``--pipeline``,
    ``--long-clip``, ``--device``): tiny random ones, or the named ones."""
    if args.tiny_random:
        from .. import tiny

        print("using tiny random models (no download; the image is noise)")
        return tiny.tiny_sd_pipeline_and_long_clip()
    from diffusers import DiffusionPipeline

    from ..devices import default_device, inference_dtype
    from ..io.loading import resolve_pipeline, resolve_source

    device = args.device or default_device()
    dtype = inference_dtype(device)
    pipeline = resolve_pipeline(args.pipeline)
    resolve_source(args.long_clip)  # a wrong --long-clip fails now, not after the pipeline is loaded
    print(f"loading {args.pipeline} on {device} ({str(dtype).removeprefix('torch.')})")
    stock = DiffusionPipeline.from_pretrained(pipeline, torch_dtype=dtype).to(device)
    return stock, args.long_clip


def _generate(pipe, args: argparse.Namespace):
    from ..evaluation.generation import GenerationSettings, generate_image

    settings = GenerationSettings(steps=args.steps, guidance=args.guidance, height=args.height, width=args.width)
    return generate_image(pipe, {"prompt": args.prompt, "negative_prompt": args.negative_prompt}, args.seed, settings)


def _sibling(path: Path, tag: str) -> Path:
    return path.with_name(f"{path.stem}-{tag}{path.suffix}")


def _save(image, path: Path) -> Path:
    with atomic_write_file(path) as staging:
        image.save(staging, format="PNG")
    return path
