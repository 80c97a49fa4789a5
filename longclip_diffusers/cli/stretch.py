"""``longclip-diffusers stretch``: any transformers CLIP text encoder to 248 positions, no training.

Knowledge-preserved stretching (docs/stretching.md), e.g. SDXL's ``text_encoder_2`` (OpenCLIP
bigG) so that both SDXL encoders read 248 tokens.
"""

from __future__ import annotations

import argparse

from ..constants import DEFAULT_RATIO, LONG_LENGTH
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
