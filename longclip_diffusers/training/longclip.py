"""Long-CLIP fine-tuning end to end: load a CLIP base, stretch it (once, with ``--keep`` and
``--ratio``; a base that is already a Long-CLIP is not stretched again), train with primary
component matching, export a plain transformers ``CLIPModel`` at 248 positions by default
(docs/stretching.md, docs/pcm-loss.md).

``training/train_longclip.py`` is a thin script around :func:`train_longclip`; launch it with
``accelerate launch`` (GPUs, nodes) or ``torchrun`` (several CPU processes).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from transformers import CLIPModel

from ..compat import text_config, vision_image_size
from ..errors import IncompatibleEncoderError
from ..io.export import save_clip_model
from ..io.loading import load_clip_model, load_tokenizer
from .checkpointing import check_output_dir
from .config import build_longclip_parser, check_training_args
from .data import check_image_data
from .loop import TrainResult, finish_run, make_accelerator, plan_run_data, run_then_teardown, train_contrastive
from .model_setup import merge_position_table, prepare_longclip_model
from .records import read_records


def parse_longclip_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return check_training_args(build_longclip_parser().parse_args(argv))


def train_longclip(args: argparse.Namespace) -> TrainResult:
    """Run the whole recipe for parsed ``args``; every process calls it. The main process
    writes the model and ``training_summary.json`` (losses per step, skipped images,
    validation R@1) into ``args.output_dir``."""
    check_output_dir(args.output_dir, args.overwrite, args.resume_from)
    accelerator = make_accelerator(args)
    data = plan_run_data(read_records(args.data), args, accelerator.num_processes, "training pairs")
    check_image_data(data.train, args.image_root)
    # unstretched: prepare_longclip_model stretches with this run's --keep/--ratio
    model = load_clip_model(args.base_model, stretch=False)
    if not isinstance(model, CLIPModel):
        raise IncompatibleEncoderError(
            f"--base-model {args.base_model} is a TULIP model, whose rotary positions have no table to "
            "stretch. Fix: fine-tune a CLIP or Long-CLIP base, or train TULIP with training/distill_tulip.py"
        )
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
        data,
        max_length=positions,
        image_size=vision_image_size(model),
        project_name="longclip",
    )

    def export(trained: CLIPModel, folder: Path) -> None:
        save_clip_model(merge_position_table(trained), folder, tokenizer=tokenizer)

    return finish_run(accelerator, result, export, args.output_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Script entry point (:func:`~.loop.run_then_teardown`): 0 once trained, 1 and one line
    on a user error."""
    return run_then_teardown(lambda argv: train_longclip(parse_longclip_args(argv)), argv)
