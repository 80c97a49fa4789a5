"""Resumable training state and the final model, under one output folder.

``OUTPUT_DIR/checkpoints/step-N`` holds accelerate's state (model, optimizer, scheduler, RNG of
every process) and ``progress.json`` (:class:`TrainingProgress`: step, data position, skipped
images, the loss of every step so far). The progress is plain JSON rather than an accelerate "custom object", which accelerate
would unpickle with ``weights_only=False``. Each checkpoint is written to a temporary folder by
every process and renamed into place once all are done, so a crash never leaves a half
checkpoint. The final model files go to ``OUTPUT_DIR`` itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputNotFoundError, InvalidArgumentError, OutputExistsError
from ..io.atomic import atomic_output_dir, check_output_path

CHECKPOINTS = "checkpoints"
PROGRESS_FILE = "progress.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class TrainingProgress:
    """Where a run is: saved with every checkpoint so a resume continues with the next batch
    and its summary still holds the loss of every step."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    #: The first few unreadable images, by path and reason; ``skipped_count`` counts them all.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    samples_read: int = 0
    skipped_count: int = 0
    #: The processes of the run that saves it; checked, not restored (:func:`check_resume_processes`).
    num_processes: int = 1

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.skipped = [tuple(item) for item in state["skipped"]]
        self.losses = [float(loss) for loss in state["losses"]]
        # checkpoints written before these were counted
        self.samples_read = int(state.get("samples_read", 0))
        self.skipped_count = int(state.get("skipped_count", len(self.skipped)))


def track_progress(accelerator, progress: TrainingProgress) -> None:
    """Write ``progress`` as JSON into every state accelerate saves, and read it back from every
    state it loads."""

    def save(models, weights, output_dir) -> None:
        if accelerator.is_main_process:
            (Path(output_dir) / PROGRESS_FILE).write_text(json.dumps(progress.state_dict()))

    def load(models, input_dir) -> None:
        progress.load_state_dict(json.loads((Path(input_dir) / PROGRESS_FILE).read_text()))

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def check_resume_processes(checkpoint: Path, processes: int) -> None:
    """Refuse to resume ``checkpoint`` with another number of processes than the run that wrote
    it: the data order (which samples each process reads), the global batch and the step count
    all depend on it, so the resumed run would not continue the interrupted one."""
    saved = json.loads((checkpoint / PROGRESS_FILE).read_text()).get("num_processes")
    if saved is not None and saved != processes:
        raise InvalidArgumentError(
            f"{checkpoint} was written by a run of {saved} process(es) and this run has {processes}; "
            "which samples each process reads, the global batch and the step count depend on that "
            f"number. Fix: resume with {saved} (accelerate launch --num_processes {saved}, or torchrun "
            f"--nproc_per_node {saved})"
        )


def checkpoint_dir(output_dir: str | os.PathLike, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS / f"step-{step}"


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step under ``OUTPUT_DIR/checkpoints``, if any."""
    folder = Path(output_dir) / CHECKPOINTS
    steps = [
        (int(match.group(1)), path)
        for path in (folder.iterdir() if folder.is_dir() else ())
        if path.is_dir() and (match := _STEP_DIR.match(path.name))
    ]
    return max(steps)[1] if steps else None


def resolve_resume(resume_from: str | None, output_dir: str | os.PathLike) -> Path | None:
    """``--resume-from``: a checkpoint folder, or ``latest`` (None when there is none yet)."""
    if resume_from is None:
        return None
    if resume_from == "latest":
        return latest_checkpoint(output_dir)
    path = Path(resume_from)
    if not (path / PROGRESS_FILE).is_file():
        raise InputNotFoundError(
            f"{path} is not a training checkpoint (no {PROGRESS_FILE}); pass a folder "
            f"under OUTPUT_DIR/{CHECKPOINTS}/ or --resume-from latest"
        )
    return path


def save_checkpoint(accelerator, output_dir: str | os.PathLike, step: int) -> Path:
    """Every process calls this; returns ``OUTPUT_DIR/checkpoints/step-N`` once it is complete."""
    from accelerate.utils import broadcast_object_list

    target = checkpoint_dir(output_dir, step)
    if not accelerator.is_main_process:
        staging = broadcast_object_list([None])[0]
        accelerator.save_state(staging)
        accelerator.wait_for_everyone()
        accelerator.wait_for_everyone()
        return target
    with atomic_output_dir(target, overwrite=True) as staging:
        broadcast_object_list([str(staging)])
        accelerator.save_state(str(staging))
        accelerator.wait_for_everyone()
    accelerator.wait_for_everyone()
    return target


def check_output_dir(output_dir: str | os.PathLike, overwrite: bool, resume_from: str | None = None) -> None:
    """Refuse, before any training, to train over a finished model, or to mix a new run's
    checkpoints with another run's (a later ``--resume-from latest`` would pick either), unless
    asked to. A file where the folder should be, or a ``resume_from`` that is no checkpoint, is
    refused too."""
    check_output_path(output_dir, folder=True, flag="--output-dir")
    if resume_from is not None:
        resolve_resume(resume_from, output_dir)
    if overwrite:
        return
    if (Path(output_dir) / "config.json").exists():
        raise OutputExistsError(
            f"{output_dir} already holds a trained model; pick another --output-dir or pass --overwrite"
        )
    existing = latest_checkpoint(output_dir)
    if existing is not None and resume_from is None:
        raise OutputExistsError(
            f"{output_dir} holds checkpoints of another run ({existing.name}); pass --resume-from "
            "latest, another --output-dir, or --overwrite"
        )


def publish_model(save, output_dir: str | os.PathLike) -> Path:
    """Write the final model with ``save(folder)`` into a staging folder, then move its files
    into ``OUTPUT_DIR`` (which also holds checkpoints and logs, so it cannot be swapped whole).
    ``config.json`` moves last: until then ``OUTPUT_DIR`` is not a loadable model."""
    output_dir = Path(output_dir)
    staging = output_dir / ".final-model"
    shutil.rmtree(staging, ignore_errors=True)
    save(staging)
    try:
        (output_dir / "config.json").unlink(missing_ok=True)
        names = sorted(os.listdir(staging), key=lambda name: name == "config.json")
        for name in names:
            destination = output_dir / name
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            os.replace(staging / name, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir
