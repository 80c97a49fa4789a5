"""``longclip-diffusers generate``: one image from a long prompt, optionally next to the stock one."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..constants import PIPELINE_FAMILIES, RECIPES
from ..io.atomic import atomic_write_file
from .options import add_model_sources, add_tiny_random


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate an image from a long prompt with Long-CLIP text encoders",
        description=f"Load an {PIPELINE_FAMILIES} pipeline, swap in Long-CLIP text encoders (248 tokens) "
        "and write the image. --compare also writes the stock pipeline's image (same seed) and a "
        "side-by-side sheet. Runs on CUDA, MPS or CPU (float16 on a GPU).",
    )
    parser.add_argument("--prompt", required=True, help="the prompt (up to 246 tokens are read)")
    parser.add_argument(
        "--negative-prompt",
        default=None,
        help="what the image should not show (ignored by Flux.1's distilled guidance)",
    )
    add_model_sources(parser)
    add_tiny_random(parser, "for trying the command end to end on any machine, offline")
    parser.add_argument("--steps", type=int, default=30, help="denoising steps (default: %(default)s)")
    parser.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="guidance scale (default: the pipeline's: 7.5 SD1.5, 5.0 SDXL, 3.5 Flux.1, 7.0 SD3)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: the model's)")
    parser.add_argument("--width", type=int, default=None, help="image width (default: the model's)")
    parser.add_argument(
        "--recipe",
        choices=RECIPES,
        default="standard",
        help="SDXL embedding recipe: diffusers' penultimate layers (standard) or the released "
        "Long-CLIP code's normalised last layers (longclip); SD3 takes standard only, SD1.5 and "
        "Flux.1 read the same either way (default: %(default)s)",
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

    stock, long_clip = _load(args)
    tokenizer = getattr(stock, detect_slots(stock).tokenizer_slots[0])
    print(token_report(args.prompt, tokenizer).summary())

    if args.compare:
        stock, long = long_clip_pair(stock, long_clip, recipe=args.recipe)
    else:
        long = apply_long_clip(stock, long_clip, recipe=args.recipe)
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


def _load(args: argparse.Namespace):
    """The stock pipeline and the Long-CLIP source: tiny random ones, or the named ones."""
    if args.tiny_random:
        from .. import tiny

        print(f"using a tiny random {args.tiny_random} pipeline (no download; the image is noise)")
        return tiny.tiny_pipeline_and_long_clip(args.tiny_random)
    from diffusers import DiffusionPipeline

    from ..devices import default_device, inference_dtype
    from ..drop_in.pipeline_kinds import supported_pipeline_folder

    folder, slots = supported_pipeline_folder(args.pipeline, args.recipe)
    kind = slots.kind
    if kind == "flux" and args.negative_prompt:
        print(
            "note: Flux.1 ignores --negative-prompt here (distilled guidance; diffusers reads it only with true_cfg_scale > 1)"
        )
    device = args.device or default_device()
    dtype = inference_dtype(device)
    print(f"loading {args.pipeline} ({kind}) on {device} ({str(dtype).removeprefix('torch.')})")
    stock = DiffusionPipeline.from_pretrained(folder, torch_dtype=dtype).to(device)
    return stock, args.long_clip


def _generate(pipe, args: argparse.Namespace):
    import torch

    options = {}
    if args.guidance is not None:
        options["guidance_scale"] = args.guidance
    # a CPU generator gives the same starting noise on every device, so runs compare
    generator = torch.Generator("cpu").manual_seed(args.seed)
    return pipe(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        num_inference_steps=args.steps,
        height=args.height,
        width=args.width,
        generator=generator,
        **options,
    ).images[0]


def _sibling(path: Path, tag: str) -> Path:
    return path.with_name(f"{path.stem}-{tag}{path.suffix}")


def _save(image, path: Path) -> Path:
    with atomic_write_file(path) as staging:
        image.save(staging, format="PNG")
    return path
