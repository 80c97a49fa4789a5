"""Long-CLIP fine-tuning end to end: load a CLIP base, stretch it (once, with ``--keep`` and
``--ratio``; a base that is already a Long-CLIP is not stretched again), train with primary
component matching, export a plain transformers ``CLIPModel`` at 248 positions by default
(docs/stretching.md, docs/pcm-loss.md).

``training/train_longclip.py`` is a thin script around :func:`train_longclip`; launch it with
``accelerate launch`` (GPUs, nodes) or ``torchrun`` (several CPU processes).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from transformers import CLIPModel

from ..compat import text_config, vision_image_size
from ..errors import IncompatibleEncoderError, InvalidArgumentError
from ..io.export import save_clip_model, save_text_encoder
from ..io.image_preprocessing import ClipImageTransform
from ..io.loading import load_clip_model, load_tokenizer
from .checkpointing import check_output_dir
from .config import build_longclip_parser, check_training_args
from .data import check_image_data
from .feature_cache import CachedFeatureDataset, FeatureCache
from .fsdp_export import full_model_for_export
from .loop import (
    RunData,
    TrainResult,
    finish_run,
    make_accelerator,
    plan_run_data,
    run_then_teardown,
    train_contrastive,
)
from .model_setup import empty_like_prepared, prepare_longclip_model, restore_export_layout
from .records import read_records
from .scale_config import check_scale_args, export_kind
from .shards import ShardSet, is_shard_pattern, shard_epoch_batches
from .text_only import TextOnlyClip, load_text_only_clip, text_encoder_with_projection


def parse_longclip_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return check_scale_args(check_training_args(build_longclip_parser().parse_args(argv)))


def train_longclip(args: argparse.Namespace) -> TrainResult | None:
    """Run the whole recipe for parsed ``args``; every process calls it. The main process
    writes the model and ``training_summary.json`` (losses per step, skipped images,
    validation R@1) into ``args.output_dir``. With ``--dry-run`` it prints the memory plan
    (:mod:`.memory_plan`) instead, and returns None."""
    if args.dry_run:
        from .memory_plan import print_memory_plan

        print_memory_plan(args)
        return None
    check_output_dir(args.output_dir, args.overwrite, args.resume_from)
    accelerator = make_accelerator(args)
    source = _training_input(args, accelerator)
    # unstretched: prepare_longclip_model stretches with this run's --keep/--ratio
    model: CLIPModel | TextOnlyClip
    if source.cache is not None:
        model = load_text_only_clip(args.base_model)
        source.check_cache(source.cache, model.config.projection_dim)
        image_size = source.cache.manifest.image_size
    else:
        full = load_clip_model(args.base_model, stretch=False)
        if not isinstance(full, CLIPModel):
            raise IncompatibleEncoderError(
                f"--base-model {args.base_model} is a TULIP model, whose rotary positions have no table to "
                "stretch. Fix: fine-tune a CLIP or Long-CLIP base, or train TULIP with training/distill_tulip.py"
            )
        model, image_size = full, vision_image_size(full)
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
        source.data,
        max_length=positions,
        image_size=image_size,
        project_name="longclip",
        samples=source.samples,
        batches=source.batches(ClipImageTransform(image_size)),
    )

    prepared = result.prepared if result.prepared is not None else result.model
    result.model = full_model_for_export(  # type: ignore[assignment]  # the same class, gathered whole
        prepared, result.model, accelerator.is_main_process, lambda: empty_like_prepared(model, args.keep)
    )

    def export(trained, folder) -> None:
        restore_export_layout(trained)
        if export_kind(args) == "text-encoder":
            save_text_encoder(text_encoder_with_projection(trained), folder, tokenizer=tokenizer)
        else:
            save_clip_model(trained, folder, tokenizer=tokenizer)

    return finish_run(accelerator, result, export, args.output_dir)


@dataclass
class _TrainingInput:
    """Where a run's samples come from: a caption file's records (images from ``--image-root``,
    or features from a cache) or tar shards (:mod:`.shards`); ``data`` says what to train on."""

    args: argparse.Namespace
    accelerator: object
    data: RunData
    shard_set: ShardSet | None = None
    cache: FeatureCache | None = None

    def check_cache(self, cache: FeatureCache, dim: int) -> None:
        cache.check(self.args.data, self.args.image_root, self.shard_set, dim)

    @property
    def samples(self) -> Callable[[Sequence], CachedFeatureDataset] | None:
        if self.cache is None or self.shard_set is not None:
            return None
        cache = self.cache
        return lambda items: CachedFeatureDataset(items, cache)

    def batches(self, transform) -> Callable | None:
        if self.shard_set is None:
            return None
        shard_set, lookup = self.shard_set, self.cache.lookup if self.cache else None

        def stream(collate, progress):
            return shard_epoch_batches(shard_set, collate, self.args, self.accelerator, progress, transform, lookup)

        return stream


def _training_input(args: argparse.Namespace, accelerator) -> _TrainingInput:
    from accelerate.utils import DistributedType

    if args.validation_size and accelerator.distributed_type == DistributedType.FSDP:
        # validation runs on the main process alone, and a sharded model cannot run a forward there
        raise InvalidArgumentError(
            "--validation-size runs on the main process only, which FSDP's sharded model cannot do; "
            "drop it and evaluate the exported model (longclip-diffusers eval)"
        )
    cache = FeatureCache(args.image_features) if args.image_features is not None else None
    processes = accelerator.num_processes
    if is_shard_pattern(args.data):
        if args.validation_size:
            raise InvalidArgumentError(
                "--validation-size holds out pairs of a caption file; with tar shards, evaluate "
                "the trained model on a held-out set instead (longclip-diffusers eval)"
            )
        shard_set = ShardSet.open(args.data, accelerator.is_local_main_process)
        data = RunData([], [], shard_set.total_steps(args, processes))
        return _TrainingInput(args, accelerator, data, shard_set, cache)
    records = read_records(args.data)
    if cache is not None:
        # items carry their index in the caption file: the cache is keyed by it
        data = plan_run_data(list(enumerate(records)), args, processes, "training pairs")
    else:
        data = plan_run_data(records, args, processes, "training pairs")
        check_image_data(data.train, args.image_root)
    return _TrainingInput(args, accelerator, data, None, cache)


def main(argv: Sequence[str] | None = None) -> int:
    """Script entry point (:func:`~.loop.run_then_teardown`): 0 once trained, 1 and one line
    on a user error."""
    return run_then_teardown(lambda argv: train_longclip(parse_longclip_args(argv)), argv)
