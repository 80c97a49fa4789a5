"""Long-CLIP fine-tuning end to end: load a CLIP base, stretch it, train with primary component
matching, export a plain transformers ``CLIPModel`` at 248 positions (REFERENCE.md sections 2-3).

``training/train_longclip.py`` is a thin script around :func:`train_longclip`; launch it with
``accelerate launch`` (GPUs, nodes) or ``torchrun`` (several CPU processes).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from ..compat import text_config
from ..export import save_clip_model
from ..loading import load_clip_model, load_tokenizer
from .checkpointing import check_output_dir, publish_model
from .config import build_longclip_parser, check_training_args
from .loop import TrainResult, make_accelerator, train_contrastive, write_summary
from .model_setup import merge_position_table, prepare_longclip_model


def parse_longclip_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return check_training_args(build_longclip_parser().parse_args(argv))


def train_longclip(args: argparse.Namespace) -> TrainResult:
    """Run the whole recipe for parsed ``args``; every process calls it. The main process
    writes the model and ``training_summary.json`` (losses per step, skipped images,
    validation R@1) into ``args.output_dir``."""
    check_output_dir(args.output_dir, args.overwrite)
    accelerator = make_accelerator(args, project_name="longclip")
    model = load_clip_model(args.base_model)
    prepare_longclip_model(
        model,
        keep=args.keep,
        ratio=args.ratio,
        freeze_vision=args.freeze_vision,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    positions = text_config(model).max_position_embeddings
    tokenizer = load_tokenizer(args.tokenizer or args.base_model, model_max_length=positions)
    result = train_contrastive(
        args,
        accelerator,
        model,
        tokenizer,
        max_length=positions,
        image_size=model.config.vision_config.image_size,
    )
    if accelerator.is_main_process:
        trained = merge_position_table(result.model).to(torch.float32)
        trained.eval()
        publish_model(lambda folder: save_clip_model(trained, folder, tokenizer=tokenizer), args.output_dir)
        write_summary(result, args.output_dir)
        accelerator.print(f"saved the Long-CLIP model to {args.output_dir}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Script entry point: train, then tear the process group down (gloo can abort at exit
    otherwise, REFERENCE.md section 8)."""
    try:
        train_longclip(parse_longclip_args(argv))
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0
