"""``longclip-diffusers convert``: a Long-CLIP / OpenAI CLIP checkpoint to a transformers folder.

Also holds the parser pieces ``stretch`` shares: ``SRC OUT``, output options, ``--keep``/``--ratio``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..atomic import refuse_existing_output
from ..errors import CheckpointError
from ..export import DTYPES, export_checkpoint
from ..loading import DEFAULT_TOKENIZER, KNOWN_CHECKPOINTS, KNOWN_TULIP_REPOS, is_tulip_repo, load_tokenizer, resolve_source
from ..stretch import DEFAULT_KEEP, DEFAULT_RATIO

DESCRIPTION = """\
Convert a Long-CLIP checkpoint (or a plain OpenAI CLIP one, whose 77 positions are stretched to
248; or a TULIP one, recognised by its missing text position table, which becomes a
TulipTextModel / TulipModel) into a transformers folder: model.safetensors with text_model./vision_model. keys (loads in
transformers 4.x and 5.x, diffusers and ComfyUI), config.json, the tokenizer at the model's
length and, for full models, preprocessor_config.json (so CLIPProcessor.from_pretrained works).
The file is read with torch.load(weights_only=True) or safetensors, never unpickled freely.
OUT is written to a temporary folder and moved into place only when complete."""


def register(subparsers) -> None:
    parser = add_src_out_parser(
        subparsers,
        "convert",
        summary="convert a Long-CLIP / OpenAI CLIP .pt or .safetensors checkpoint to a transformers folder",
        description=DESCRIPTION,
        src_help="checkpoint file (.pt/.pth/.bin/.safetensors, OpenAI CLIP layout) or the hub repo of a "
        f"released one ({', '.join((*KNOWN_CHECKPOINTS, *KNOWN_TULIP_REPOS))})",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--text-only", action="store_true", help="save only the text encoder, as a CLIPTextModel"
    )
    what.add_argument(
        "--with-projection",
        action="store_true",
        help="save only the text encoder with its projection, as a CLIPTextModelWithProjection",
    )
    add_output_options(parser)
    add_stretch_options(parser, "used only for 77-position OpenAI CLIP files")
    parser.add_argument(
        "--tulip",
        action="store_true",
        help="SRC is a TULIP checkpoint even though it has a text position table (TULIP's full "
        "released files keep open_clip's unused one); without a table TULIP is detected anyway",
    )
    parser.set_defaults(func=run)


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


def add_output_options(
    parser: argparse.ArgumentParser, tokenizer_default: str | None = DEFAULT_TOKENIZER
) -> None:
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
        choices=list(DTYPES),
        default=None,
        help="dtype of the saved weights (default: the model's own; float32 for checkpoints)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def add_stretch_options(parser: argparse.ArgumentParser, note: str) -> None:
    """``--keep`` and ``--ratio`` of knowledge-preserved stretching (REFERENCE.md section 2)."""
    parser.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        help=f"position rows kept unchanged (default {DEFAULT_KEEP}; {note})",
    )
    parser.add_argument(
        "--ratio",
        type=float,
        default=DEFAULT_RATIO,
        help=f"stretch factor of the other rows (default {DEFAULT_RATIO:g}: 77 -> 248; {note})",
    )


def run(args: argparse.Namespace) -> int:
    refuse_existing_output(args.out, args.overwrite)
    checkpoint = resolve_source(args.src)
    if not checkpoint.is_file():
        raise CheckpointError(
            f"'{args.src}' is a folder; convert takes a checkpoint file. Fix: pass the .pt or "
            ".safetensors file, or use `longclip-diffusers stretch` for a transformers folder."
        )
    tokenizer = load_tokenizer(args.tokenizer, fallback=None)
    kind = "text_with_projection" if args.with_projection else "text" if args.text_only else "full"
    out = export_checkpoint(
        checkpoint,
        args.out,
        kind=kind,
        tokenizer=tokenizer,
        torch_dtype=args.dtype,
        overwrite=args.overwrite,
        keep=args.keep,
        ratio=args.ratio,
        tulip=args.tulip or is_tulip_repo(args.src) or None,
    )
    print(f"saved {kind} model to {Path(out)}")
    return 0
