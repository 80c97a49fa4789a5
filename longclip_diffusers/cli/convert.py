"""``longclip-diffusers convert``: a Long-CLIP / OpenAI CLIP checkpoint to a transformers folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import KNOWN_CHECKPOINTS, KNOWN_TULIP_REPOS
from ..errors import CheckpointError
from ..io.atomic import refuse_existing_output
from .options import add_output_options, add_src_out_parser, add_stretch_options

if TYPE_CHECKING:
    from ..conversion.model_building import ConvertKind

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
    what.add_argument("--text-only", action="store_true", help="save only the text encoder, as a CLIPTextModel")
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


def run(args: argparse.Namespace) -> int:
    from ..io.export import export_checkpoint
    from ..io.loading import is_tulip_repo, load_tokenizer, resolve_source

    refuse_existing_output(args.out, args.overwrite)
    checkpoint = resolve_source(args.src)
    if not checkpoint.is_file():
        raise CheckpointError(
            f"'{args.src}' is a folder; convert takes a checkpoint file. Fix: pass the .pt or "
            ".safetensors file, or use `longclip-diffusers stretch` for a transformers folder."
        )
    tokenizer = load_tokenizer(args.tokenizer, fallback=None)
    kind: ConvertKind = "text_with_projection" if args.with_projection else "text" if args.text_only else "full"
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
