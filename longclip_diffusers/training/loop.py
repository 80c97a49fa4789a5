"""The contrastive training loop shared by the Long-CLIP trainer and TULIP's stage 2, and the
step loop (:func:`run_training_steps`) under it that TULIP's stage 1 drives with its own loss.

The contrastive loop takes a ready ``CLIPModel``-like model (``get_image_features``,
``get_text_features``, ``logit_scale``) and a tokenizer, and runs Long-CLIP's recipe on
accelerate: sharded
deterministic batches, features all-gathered with gradient, the PCM loss, AdamW with warm-up
and cosine decay, checkpoints, a progress bar, tracker logs and optional validation R@1. The
caller exports the returned model with :func:`finish_run`.

Every trainer runs in the same order, so that a user error leaves ``OUTPUT_DIR`` as it was:
arguments and output folder checked, data read and split and the step count known
(:func:`plan_run_data`), models loaded, and only then anything written (:func:`prepare_run`
starts the tracker). :func:`run_then_teardown` is the scripts' entry point around all of it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import InvalidArgumentError, LongClipError, TrainingDivergedError, UnreadableDataError
from ..evaluation.metrics import feature_recall_at_k
from ..io.atomic import atomic_write_file
from ..io.image_preprocessing import ClipImageTransform
from .checkpointing import (
    CHECKPOINTS,
    TrainingProgress,
    check_resume_processes,
    publish_model,
    resolve_resume,
    save_checkpoint,
    track_progress,
)
from .data import (
    LISTED_UNREADABLE,
    UNREADABLE_JUDGED_AFTER,
    CaptionBatchCollator,
    ImageCaptionDataset,
    ShardedBatchSampler,
    batches_per_epoch,
    make_loader,
)
from .features import ContrastiveFeatures
from .gather import BatchShards, all_gather_ints
from .gradient_cache import contrastive_backward
from .losses import PcmLoss, pcm_loss
from .optimization import make_optimizer, make_scheduler

if TYPE_CHECKING:
    from transformers import CLIPModel

    from ..tulip.full_model import TulipModel
    from .feature_cache import CachedFeatureDataset
    from .text_only import TextOnlyClip

logger = logging.getLogger(__name__)

#: The file beside a trained model that :func:`write_summary` writes.
SUMMARY_FILE = "training_summary.json"
#: Errors a user fixes by changing an argument or a file: one line, not a traceback per process.
#: A path the user gave that cannot be written or is the wrong kind is theirs to fix too.
USER_ERRORS = (ValueError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, LongClipError)

ModelT = TypeVar("ModelT", bound=nn.Module)
#: A model with CLIP's two towers and ``get_text_features`` / ``get_image_features``.
DualEncoderT = TypeVar("DualEncoderT", bound="CLIPModel | TulipModel | TextOnlyClip")
ArgsT = TypeVar("ArgsT")
BatchT = TypeVar("BatchT")


@dataclass
class TrainResult(Generic[ModelT]):
    """What a run produced: the trained (unwrapped) model and its history (validation metrics
    on the main process only); ``skipped`` lists the first unreadable images, ``skipped_count``
    counts them all."""

    model: ModelT
    steps: int
    losses: list[float] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    validation: dict[str, float] = field(default_factory=dict)
    skipped_count: int = 0
    #: the module as accelerate prepared it (DDP, FSDP, ...), for gathering sharded weights
    prepared: nn.Module | None = None


def write_summary(result: TrainResult[Any], output_dir: str | Path) -> Path:
    """Write ``training_summary.json`` (steps, the loss of every step, the first skipped images
    and their count, the last validation metrics) into ``output_dir`` atomically; returns its
    path."""
    summary = {
        "steps": result.steps,
        "losses": result.losses,
        "skipped_images": [{"image": path, "reason": reason} for path, reason in result.skipped],
        "skipped_count": result.skipped_count,
        "validation": result.validation,
    }
    path = Path(output_dir) / SUMMARY_FILE
    with atomic_write_file(path) as staging:
        staging.write_text(json.dumps(summary, indent=2))
    return path


def run_then_teardown(fn: Callable[[ArgsT], object], args: ArgsT) -> int:
    """A training script's ``main``: ``fn(args)``, 0 when it returns. A user error
    (:data:`USER_ERRORS`) is printed once, as ``error: <message>``, by the main process, and
    gives 1. Either way the process group is torn down (gloo can abort at exit otherwise,
    docs/distributed-training.md)."""
    try:
        fn(args)
    except USER_ERRORS as exc:
        if _process_rank() == 0:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


def _process_rank() -> int:
    """This process's global rank, also before (or without) a process group: the launchers
    (torchrun, accelerate launch) set ``RANK``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def make_accelerator(args: argparse.Namespace):
    """An ``Accelerator`` for ``args``: mixed precision (bf16 on GPU by default), logs under
    ``OUTPUT_DIR/logs`` (the tracker starts in :func:`prepare_run`, once the run is known to
    be possible); the scheduler steps once per optimizer step whatever the number of
    processes (our step counts are global)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    cpu = args.cpu or not torch.cuda.is_available()
    precision = args.mixed_precision or ("no" if cpu else "bf16")
    report_to = None if args.report_to == "none" else args.report_to
    return Accelerator(
        cpu=cpu,
        mixed_precision=precision,
        log_with=report_to,
        project_config=ProjectConfiguration(
            project_dir=str(args.output_dir), logging_dir=str(Path(args.output_dir) / "logs")
        ),
        step_scheduler_with_optimizer=False,
    )


@dataclass(frozen=True)
class RunData:
    """A run's items split into training and held-out ones, and the optimizer steps it makes."""

    train: list
    held_out: list
    total_steps: int


def plan_run_data(items: Sequence, args: argparse.Namespace, processes: int, what: str) -> RunData:
    """Hold out the first ``--validation-size`` items, train on the rest; raises InvalidArgumentError
    when they make no full global batch (see :func:`total_training_steps`)."""
    held_out, train = list(items[: args.validation_size]), list(items[args.validation_size :])
    return RunData(train, held_out, total_training_steps(len(train), args, processes, what))


def train_contrastive(
    args: argparse.Namespace,
    accelerator,
    model: DualEncoderT,
    tokenizer,
    data: RunData,
    *,
    max_length: int,
    image_size: int,
    project_name: str,
    samples: Callable[[Sequence], CachedFeatureDataset] | None = None,
    batches: Callable[[Callable[[list], dict], TrainingProgress], Generator[dict, None, None]] | None = None,
) -> TrainResult[DualEncoderT]:
    """Train ``model`` on the caption records of ``data`` (:func:`plan_run_data`) with the PCM
    loss; every process calls this.

    ``samples(items)`` builds the dataset of a list of ``data``'s items (default: images read
    from ``--image-root``; a feature cache gives image features instead, :mod:`.feature_cache`);
    ``batches(collate, progress)`` replaces the whole batch stream (tar shards, :mod:`.shards`)."""
    torch.manual_seed(args.seed)
    transform = ClipImageTransform(image_size)
    use_short = args.short_loss_weight > 0
    collator = CaptionBatchCollator(tokenizer, max_length, with_short=use_short)

    def dataset_of(items: Sequence) -> ImageCaptionDataset | CachedFeatureDataset:
        return samples(items) if samples is not None else ImageCaptionDataset(items, args.image_root, transform)

    # a TextOnlyClip (cached image features) has CLIPModel's get_text_features / get_image_features
    features = ContrastiveFeatures(cast("CLIPModel | TulipModel", model), tokenizer.eos_token_id)
    features, optimizer, scheduler, progress = prepare_run(
        accelerator, features, model, args, data.total_steps, project_name=project_name
    )

    def validate(step: int) -> dict[str, float]:
        return _validate(args, accelerator, features, dataset_of(data.held_out), collator, step)

    losses, validation = run_training_steps(
        accelerator,
        args,
        progress,
        scheduler,
        batches(collator, progress)
        if batches is not None
        else epoch_batches(dataset_of(data.train), collator, args, accelerator, progress),
        lambda batch: _train_step(args, accelerator, features, optimizer, scheduler, batch, progress),
        data.total_steps,
        desc="training",
        validate=validate if data.held_out else None,
    )
    if progress.skipped_count:
        accelerator.print(skipped_summary(progress))
    accelerator.wait_for_everyone()
    return TrainResult(
        model=accelerator.unwrap_model(features).clip,
        steps=progress.step,
        losses=losses,
        skipped=list(progress.skipped),
        validation=validation,
        skipped_count=progress.skipped_count,
        prepared=features,
    )


def count_unreadable(
    progress: TrainingProgress,
    read: int,
    skipped: Sequence[tuple[str, str]],
    max_share: float,
    log: bool = True,
) -> None:
    """Count a global batch: ``read`` images tried, ``skipped`` the unreadable ones as
    ``(path, reason)``; the first :data:`LISTED_UNREADABLE` are kept (and logged when ``log``),
    the rest only counted. Raises :class:`UnreadableDataError` once the run cannot make
    progress: every image read so far unreadable, or more than ``max_share`` of them, judged
    from :data:`UNREADABLE_JUDGED_AFTER` images on. Every process counts the same gathered
    numbers, so all of them stop together."""
    progress.samples_read += read
    progress.skipped_count += len(skipped)
    for path, reason in skipped[: max(LISTED_UNREADABLE - len(progress.skipped), 0)]:
        progress.skipped.append((path, reason))
        if log:
            logger.warning("skipping unreadable image %s (%s)", path, reason)
            if len(progress.skipped) == LISTED_UNREADABLE:
                logger.warning("further unreadable images are counted, not listed")
    if progress.samples_read < UNREADABLE_JUDGED_AFTER or not progress.skipped_count:
        return
    share = progress.skipped_count / progress.samples_read
    if share > max_share or progress.skipped_count == progress.samples_read:
        path, reason = progress.skipped[0]
        raise UnreadableDataError(
            f"{progress.skipped_count} of the {progress.samples_read} images read so far cannot be read "
            f"({share:.0%}; --max-unreadable is {max_share:g}), e.g. {path}: {reason}. Fix: check "
            "--image-root and the data file, or raise --max-unreadable."
        )


def skipped_summary(progress: TrainingProgress) -> str:
    """The end-of-run lines about unreadable images: the count, then the first few paths."""
    listed = "\n".join(f"  {path}: {reason}" for path, reason in progress.skipped)
    more = progress.skipped_count - len(progress.skipped)
    return f"skipped {progress.skipped_count} unreadable image(s) of {progress.samples_read} read:\n{listed}" + (
        f"\n  ... and {more} more" if more else ""
    )


def total_training_steps(num_samples: int, args: argparse.Namespace, processes: int, what: str) -> int:
    """``--max-steps``, or ``--epochs`` times the full global batches in the data."""
    per_epoch = batches_per_epoch(num_samples, args.batch_size * processes)
    if per_epoch == 0:
        raise InvalidArgumentError(
            f"{num_samples} {what} make no full global batch of {args.batch_size} x "
            f"{processes} processes; lower --batch-size or add data"
        )
    return args.max_steps or args.epochs * per_epoch


def prepare_run(
    accelerator,
    module: nn.Module,
    trained: nn.Module,
    args: argparse.Namespace,
    total_steps: int,
    *,
    project_name: str,
):
    """The start of the run, once data and models are ready: ``--resume-from`` resolved (and
    refused when written by another number of processes, :func:`.check_resume_processes`), the
    tracker (``--report-to``) started as ``project_name`` with ``args`` as its hyper-parameters,
    AdamW on ``trained``'s parameters and the warm-up + cosine schedule; ``module`` (what the
    forward runs through, holding ``trained``), optimizer and scheduler prepared by accelerate;
    a :class:`TrainingProgress` saved with every checkpoint; the resumed state loaded.
    Returns ``(module, optimizer, scheduler, progress)``."""
    resume = resolve_resume(args.resume_from, args.output_dir)
    if resume is None and args.resume_from == "latest":
        accelerator.print(f"no checkpoint under {Path(args.output_dir) / CHECKPOINTS}; starting from step 0")
    if resume is not None:
        check_resume_processes(resume, accelerator.num_processes)
    if args.report_to != "none":
        config = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items()}
        accelerator.init_trackers(project_name, config=config)
    optimizer = make_optimizer(trained, args.lr, args.weight_decay, tuple(args.adam_betas), args.adam_eps)
    scheduler = make_scheduler(optimizer, args.warmup_steps, total_steps)
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    progress = TrainingProgress(num_processes=accelerator.num_processes)
    track_progress(accelerator, progress)
    if resume is not None:
        accelerator.load_state(str(resume))
        accelerator.print(f"resumed from {resume} at step {progress.step}")
    return module, optimizer, scheduler, progress


def epoch_batches(
    dataset: ImageCaptionDataset | CachedFeatureDataset | Sequence,
    collate: Callable[[list], BatchT],
    args: argparse.Namespace,
    accelerator,
    progress: TrainingProgress,
) -> Generator[BatchT, None, None]:
    """This process's batches, epoch after epoch without end, from the data position in
    ``progress`` on; ``progress.epoch`` and ``progress.batch_in_epoch`` follow what was handed
    out, so a checkpoint taken between two batches resumes with the next one."""
    while True:
        sampler = ShardedBatchSampler(
            len(dataset),
            args.batch_size,
            accelerator.num_processes,
            accelerator.process_index,
            args.seed,
            progress.epoch,
            progress.batch_in_epoch,
        )
        for batch in make_loader(dataset, sampler, collate, args.num_workers):
            progress.batch_in_epoch += 1
            yield batch
        progress.epoch += 1
        progress.batch_in_epoch = 0


def run_training_steps(
    accelerator,
    args: argparse.Namespace,
    progress: TrainingProgress,
    scheduler,
    batches: Generator[BatchT, None, None],
    train_step: Callable[[BatchT], dict[str, float] | None],
    total_steps: int,
    *,
    desc: str,
    validate: Callable[[int], dict[str, float]] | None = None,
) -> tuple[list[float], dict[str, float]]:
    """Call ``train_step(batch)`` on ``batches`` (closed at the end) until ``progress.step``
    reaches ``total_steps``. ``train_step`` makes one optimizer step and returns its tracker
    values (``train/loss``, the global loss, and any parts of it), or None when the batch was
    skipped. After each step the :func:`after_step` bookkeeping runs, and ``validate(step)``
    every ``--validate-every`` steps and once at the end (unless it just ran). Returns the
    loss of every step of the run (before a resume too: they are kept in ``progress``) and
    the last validation metrics."""
    validation: dict[str, float] = {}
    bar = tqdm(total=total_steps, initial=progress.step, desc=desc, disable=not accelerator.is_local_main_process)
    # the bar is closed on an error too, so the one-line error message starts a line of its own
    with bar, contextlib.closing(batches):
        while progress.step < total_steps:
            values = train_step(next(batches))
            if values is None:
                continue
            progress.losses.append(values["train/loss"])
            after_step(accelerator, args, progress, scheduler, bar, values, total_steps)
            if validate is not None and args.validate_every and progress.step % args.validate_every == 0:
                validation = validate(progress.step)
    if validate is not None and not (args.validate_every and progress.step % args.validate_every == 0):
        validation = validate(progress.step)
    return list(progress.losses), validation


def optimizer_step(accelerator, loss: torch.Tensor, optimizer, scheduler, progress: TrainingProgress) -> None:
    """Backward pass, optimizer and learning-rate steps, gradients cleared, the step counted."""
    accelerator.backward(loss)
    apply_optimizer_step(optimizer, scheduler, progress)


def apply_optimizer_step(optimizer, scheduler, progress: TrainingProgress) -> None:
    """Optimizer and learning-rate steps on the gradients already computed, gradients cleared,
    the step counted."""
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    progress.step += 1


def after_step(
    accelerator,
    args: argparse.Namespace,
    progress: TrainingProgress,
    scheduler,
    bar,
    values: dict[str, float],
    total_steps: int,
) -> None:
    """The bookkeeping after an optimizer step: progress bar, tracker log of ``values`` and the
    learning rate every ``--log-every`` steps (and at the last), checkpoint every
    ``--save-every`` steps."""
    bar.update(1)
    bar.set_postfix(loss=f"{values['train/loss']:.4f}")
    if progress.step % args.log_every == 0 or progress.step == total_steps:
        accelerator.log({**values, "train/lr": scheduler.get_last_lr()[0]}, step=progress.step)
    if args.save_every and progress.step % args.save_every == 0:
        save_checkpoint(accelerator, args.output_dir, progress.step)


def run_on_main(
    accelerator, module: nn.Module, evaluate: Callable[[ModelT], dict[str, float]], step: int
) -> dict[str, float]:
    """``evaluate`` on the main process only, given the unwrapped ``module`` in eval mode and
    without gradients; its metrics are logged and printed at ``step``, the module's mode is
    restored, and the other processes wait (and get no metrics)."""
    metrics: dict[str, float] = {}
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(module)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            metrics = evaluate(model)
        model.train(was_training)
        if metrics:
            accelerator.log(metrics, step=step)
            accelerator.print(f"validation at step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    accelerator.wait_for_everyone()
    return metrics


def finish_run(
    accelerator, result: TrainResult[ModelT], export: Callable[[ModelT, Path], object], output_dir
) -> TrainResult[ModelT]:
    """The end of every trainer: on the main process, the trained model in float32 and eval
    mode is written by ``export(model, folder)`` and published into ``output_dir`` with
    ``training_summary.json``; then the run ends on every process."""
    if accelerator.is_main_process:
        trained = result.model.to(torch.float32).eval()
        publish_model(lambda folder: export(trained, folder), output_dir)
        write_summary(result, output_dir)
        accelerator.print(f"saved the trained model to {output_dir}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def _train_step(args, accelerator, features, optimizer, scheduler, batch, progress) -> dict[str, float] | None:
    """One optimizer step on the global batch: the global loss and its long and short parts;
    None when some process has no usable image. Unreadable images are counted first
    (:func:`count_unreadable`)."""
    from accelerate.utils import gather_object

    counts = all_gather_ints([batch["size"], len(batch["skipped"])], accelerator.device)
    skipped = []
    if any(skipped for _, skipped in counts):
        skipped = [tuple(item) for item in gather_object([(s.image, s.reason) for s in batch["skipped"]])]
    count_unreadable(
        progress,
        sum(size + unreadable for size, unreadable in counts),
        skipped,
        args.max_unreadable,
        log=accelerator.is_main_process,
    )
    shards = BatchShards(tuple(size for size, _ in counts), accelerator.process_index)
    if min(shards.sizes) == 0:
        return None

    def loss_of(image, long_text, short_text, logit_scale) -> PcmLoss:
        return pcm_loss(
            image,
            long_text,
            short_text,
            logit_scale,
            pca_dim=args.pca_dim,
            short_weight=args.short_loss_weight,
            label_smoothing=args.label_smoothing,
            rows=shards.rows,
            pca_group_sizes=shards.sizes if args.pca_scope == "local" else None,
        )

    inputs = _model_inputs(batch, accelerator.device)
    loss = contrastive_backward(accelerator, features, inputs, shards, loss_of, getattr(args, "micro_batch", None))
    apply_optimizer_step(optimizer, scheduler, progress)
    parts = {"train/loss": loss.total, "train/long_loss": loss.long}
    if loss.short is not None:
        parts["train/short_loss"] = loss.short
    # each process holds the means over its rows: weight by rows for the global means
    weighted = torch.stack([part.detach().float() for part in parts.values()]) * shards.sizes[shards.rank]
    means = (accelerator.reduce(weighted, reduction="sum") / shards.total).tolist()
    values = dict(zip(parts, means))
    if not math.isfinite(values["train/loss"]):
        raise TrainingDivergedError(
            f"the loss became {values['train/loss']} at step {progress.step}; lower --lr or use "
            "--mixed-precision bf16 instead of fp16"
        )
    return values


def _model_inputs(batch: dict, device) -> tuple:
    short = batch["short_input_ids"]
    return (
        batch["pixel_values"].to(device),
        batch["input_ids"].to(device),
        None if short is None else short.to(device),
    )


def _validate(args, accelerator, features, dataset, collator, step) -> dict[str, float]:
    """Retrieval R@1 on the held-out pairs (long and short captions, both directions), on the
    main process (:func:`run_on_main`)."""

    def retrieval(model: nn.Module) -> dict[str, float]:
        sampler = [
            list(range(i, min(i + args.batch_size, len(dataset)))) for i in range(0, len(dataset), args.batch_size)
        ]
        parts: dict[str, list[torch.Tensor]] = {"image": [], "long": [], "short": []}
        for batch in make_loader(dataset, sampler, collator, args.num_workers):
            if not batch["size"]:
                continue
            with accelerator.autocast():
                out = model(*_model_inputs(batch, accelerator.device))
            parts["image"].append(out.image)
            parts["long"].append(out.long_text)
            if out.short_text is not None:
                parts["short"].append(out.short_text)
        metrics: dict[str, float] = {}
        if parts["image"]:
            images = torch.cat(parts["image"])
            own = torch.arange(len(images))
            for name in ("long", "short"):
                if parts[name]:
                    recall = feature_recall_at_k(images, torch.cat(parts[name]), own, ks=(1,))
                    metrics[f"val/{name}_i2t_r1"] = recall["image_to_text"]["R@1"]
                    metrics[f"val/{name}_t2i_r1"] = recall["text_to_image"]["R@1"]
        return metrics

    return run_on_main(accelerator, features, retrieval, step)
