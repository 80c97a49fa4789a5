"""``longclip-diffusers stretch``: any transformers CLIP text encoder to 248 positions, no training.

Knowledge-preserved stretching (docs/stretching.md), e.g. SDXL's ``text_encoder_2`` (OpenCLIP
bigG) so that both SDXL encoders read 248 tokens.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..constants import DEFAULT_KEEP, DEFAULT_RATIO, LONG_LENGTH
from ..errors import CheckpointError, IncompatibleEncoderError
from ..io.atomic import refuse_existing_output
from .options import add_output_options, add_src_out_parser, add_stretch_options

DESCRIPTION = """\
Stretch the position table of a transformers CLIP text encoder folder (CLIPTextModel,
CLIPTextModelWithProjection, or the text side of a CLIPModel; the class is kept), e.g. SDXL's
text_encoder_2, with knowledge-preserved stretching: the first KEEP rows are kept, the others
interpolated by RATIO (77 -> 248 with the defaults). An encoder that already reads 248 tokens or
more is stretched only with an explicit --ratio. The tokenizer is saved at the new length.
OUT is written to a temporary folder and moved into place only when complete."""


def register(subparsers) -> None:
    parser = add_src_out_parser(
        subparsers,
        "stretch",
        summary="stretch a transformers CLIP text encoder folder to 248 positions (e.g. SDXL text_encoder_2)",
        description=DESCRIPTION,
        src_help="transformers CLIP folder or hub id, e.g. a pipeline's text_encoder_2",
    )
    add_stretch_options(
        parser,
        "Long-CLIP's released setting",
        ratio_default=None,
        ratio_help=f"default {DEFAULT_RATIO:g} (77 -> 248) for an encoder under {LONG_LENGTH} positions; "
        "required to stretch a longer one further",
    )
    add_output_options(parser, tokenizer_default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm
    from transformers import CLIPModel, CLIPTextModelWithProjection

    from ..compat import text_config
    from ..io.export import FullModel, TextEncoder, save_model
    from ..io.loading import load_clip_model, load_text_encoder, load_tokenizer, resolve_source, saved_model_class
    from ..length.stretching import position_table, stretch_text_encoder

    refuse_existing_output(args.out, args.overwrite)
    source = resolve_source(args.src)
    if not source.is_dir():
        raise CheckpointError(
            f"'{args.src}' is a file; stretch takes a transformers folder. Fix: use "
            "`longclip-diffusers convert`, which stretches 77-position OpenAI CLIP checkpoints."
        )
    cls = saved_model_class(source)
    _refuse_no_op(args, _saved_positions(source))
    with tqdm(total=3, desc="loading", unit="step", leave=False) as progress:
        tokenizer = load_tokenizer(args.tokenizer or source)
        model: FullModel | TextEncoder
        if cls is CLIPModel:
            model = load_clip_model(source)
        else:
            model = load_text_encoder(source, with_projection=cls is CLIPTextModelWithProjection)
        old_length = position_table(model).num_embeddings
        if old_length >= LONG_LENGTH and args.ratio is None:
            raise IncompatibleEncoderError(
                f"'{args.src}' already reads {old_length} tokens; pass --ratio explicitly to stretch further"
            )
        progress.update()
        progress.set_description("stretching")
        stretch_text_encoder(model, keep=args.keep, ratio=args.ratio or DEFAULT_RATIO)
        progress.update()
        progress.set_description("writing")
        save_model(model, args.out, tokenizer=tokenizer, torch_dtype=args.dtype, overwrite=args.overwrite)
        progress.update()
    new_length = text_config(model).max_position_embeddings
    print(
        f"stretched {type(model).__name__} from {old_length} to {new_length} positions "
        f"(tokenizer from {tokenizer.name_or_path}); saved to {args.out}"
    )
    return 0


def _saved_positions(folder: Path) -> int | None:
    """The text positions ``folder/config.json`` records (a text config, or a CLIPModel's
    ``text_config``), read before any weight is loaded."""
    config = json.loads((folder / "config.json").read_text())
    return (config.get("text_config") or config).get("max_position_embeddings")


def _refuse_no_op(args: argparse.Namespace, old_length: int | None) -> None:
    """Refuse a --keep / --ratio that would not lengthen the table (e.g. ``--keep 77`` on a
    77-position encoder keeps every row): the output would be the input, reported as stretched."""
    from ..length.stretching import stretched_length

    if old_length is None or (old_length >= LONG_LENGTH and args.ratio is None):
        return  # no table to read here (TULIP), or refused with its own message once loaded
    ratio = args.ratio or DEFAULT_RATIO
    new_length = stretched_length(old_length, args.keep, ratio)
    if new_length <= old_length:
        raise IncompatibleEncoderError(
            f"--keep {args.keep} --ratio {ratio:g} on '{args.src}', which has {old_length} positions, gives "
            f"{new_length}: nothing would be stretched. Fix: keep fewer rows than the encoder has "
            f"(Long-CLIP keeps {DEFAULT_KEEP}) and a --ratio above 1."
        )
