"""Parser pieces the sub-commands share: ``SRC OUT``, output options, ``--keep``/``--ratio``
(checked by argparse, so a bad value fails before any model is loaded) for ``convert`` and
``stretch``; the model sources for ``generate`` and ``demo``."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from ..constants import (
    DEFAULT_KEEP,
    DEFAULT_LONG_CLIP,
    DEFAULT_PIPELINE,
    DEFAULT_RATIO,
    DEFAULT_TOKENIZER,
    DTYPE_NAMES,
)


def add_src_out_parser(
    subparsers, name: str, summary: str, description: str, src_help: str
) -> argparse.ArgumentParser:
    """A sub-command parser taking ``SRC OUT``."""
    parser = subparsers.add_parser(
        name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", metavar="SRC", help=src_help)
    parser.add_argument("out", metavar="OUT", help="output folder (must not exist, unless --overwrite)")
    return parser


def add_output_options(parser: argparse.ArgumentParser, tokenizer_default: str | None = DEFAULT_TOKENIZER) -> None:
    """``--tokenizer``, ``--dtype`` and ``--overwrite``."""
    parser.add_argument(
        "--tokenizer",
        metavar="TOK",
        default=tokenizer_default,
        help="tokenizer folder or hub id to save with the model, at the model's length "
        f"(default: {tokenizer_default or 'the one beside SRC, else ' + DEFAULT_TOKENIZER}; "
        "offline, pass a local folder)",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        default=None,
        help="dtype of the saved weights (default: the model's own; float32 for checkpoints)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def add_stretch_options(
    parser: argparse.ArgumentParser,
    note: str,
    ratio_default: float | None = DEFAULT_RATIO,
    ratio_help: str | None = None,
) -> None:
    """``--keep`` and ``--ratio`` of knowledge-preserved stretching (docs/stretching.md);
    ``ratio_help`` replaces the default's description when ``ratio_default`` is not Long-CLIP's."""
    parser.add_argument(
        "--keep",
        type=row_count,
        default=DEFAULT_KEEP,
        help=f"position rows kept unchanged (default {DEFAULT_KEEP}; {note})",
    )
    parser.add_argument(
        "--ratio",
        type=positive_ratio,
        default=ratio_default,
        help=f"stretch factor of the other rows ({ratio_help or f'default {DEFAULT_RATIO:g}: 77 -> 248'}; {note})",
    )


def row_count(text: str) -> int:
    """argparse type of ``--keep``: a whole number of rows, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; pass e.g. {DEFAULT_KEEP}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} rows cannot be kept; pass 0 or more")
    return value


def positive_ratio(text: str) -> float:
    """argparse type of ``--ratio``: a finite number above 0."""
    return _finite_number(text, "the ratio", f"{DEFAULT_RATIO:g}", zero_allowed=False)


def _finite_number(text: str, what: str, example: str, zero_allowed: bool) -> float:
    """``text`` as a finite float above 0 (or 0 too, when ``zero_allowed``), else an argparse
    error naming ``what`` and an ``example``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; pass e.g. {example}") from None
    if not (math.isfinite(value) and (value > 0 or (zero_allowed and value == 0))):
        bound = ", 0 or more" if zero_allowed else " above 0"
        raise argparse.ArgumentTypeError(f"{what} must be a finite number{bound}; got {text}")
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: a whole number, ``minimum`` or more (checked before any model is loaded)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small; pass {minimum} or more")
        return value

    return parse


def image_side(text: str) -> int:
    """argparse type of ``--height`` / ``--width``: a positive multiple of 8, as the diffusers
    pipelines require (their VAEs scale by 8)."""
    value = int_at_least(8)(text)
    if value % 8:
        raise argparse.ArgumentTypeError(f"{value} is not a multiple of 8; pass e.g. {value // 8 * 8 or 8}")
    return value


def guidance_scale(text: str) -> float:
    """argparse type of ``--guidance``: a finite number, 0 or more."""
    return _finite_number(text, "the guidance scale", "7.5", zero_allowed=True)


def port_number(text: str) -> int:
    """argparse type of ``--port``: a TCP port, 1 to 65535."""
    value = int_at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port; pass 1 to 65535, e.g. 7860")
    return value


def device_name(text: str) -> str:
    """argparse type of a script's ``--device``: one this machine has
    (:func:`~longclip_diffusers.devices.check_device`; torch is imported only when it is given)."""
    from ..devices import check_device
    from ..errors import DeviceNotAvailableError

    try:
        check_device(text)
    except DeviceNotAvailableError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_tiny_random(parser: argparse.ArgumentParser, purpose: str) -> None:
    """``--tiny-random``: tiny random-weight models built in code instead of ``--pipeline`` and
    ``--long-clip``."""
    parser.add_argument(
        "--tiny-random",
        action="store_true",
        help=f"use tiny random-weight models built in code (no download; images are noise): {purpose}",
    )


def add_model_sources(parser: argparse.ArgumentParser) -> None:
    """``--pipeline``, ``--long-clip`` (with the default hub ids) and ``--long-clip-g``."""
    parser.add_argument(
        "--pipeline",
        default=DEFAULT_PIPELINE,
        metavar="ID_OR_DIR",
        help="diffusers SD1.5 or SDXL pipeline: hub id or local directory (default: %(default)s)",
    )
    parser.add_argument(
        "--long-clip",
        default=DEFAULT_LONG_CLIP,
        metavar="SRC",
        help="Long-CLIP or TULIP text encoder: hub id, .pt/.safetensors checkpoint or transformers "
        "directory (default: %(default)s)",
    )
    parser.add_argument(
        "--long-clip-g",
        default=None,
        metavar="SRC",
        help="SDXL: a trained Long-CLIP-G text encoder with projection (what train_longclip.py exports "
        "from OpenCLIP ViT-bigG/14) for text_encoder_2 (default: stretch SDXL's own, no training)",
    )


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """``--steps``, ``--guidance``, ``--height`` and ``--width``: how each image is sampled."""
    parser.add_argument("--steps", type=int_at_least(1), default=30, help="denoising steps (default: %(default)s)")
    parser.add_argument(
        "--guidance", type=guidance_scale, default=None, help="guidance scale (default: the pipeline's, 7.5 or 5.0)"
    )
    parser.add_argument(
        "--height", type=image_side, default=None, help="image height, a multiple of 8 (default: the model's)"
    )
    parser.add_argument(
        "--width", type=image_side, default=None, help="image width, a multiple of 8 (default: the model's)"
    )
