"""The argument list and launcher every tiny training run in the tests shares."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import psutil

#: Seconds one launch may take: a tiny run takes 10-30 s on 2 cores, and two attempts must fit in
#: pytest's per-test timeout (pyproject.toml) so that a hang is reported with its stacks.
ATTEMPT_SECONDS = 120


def tiny_training_argv(
    base: Path,
    data: Path | str,
    output: Path,
    *extra: str,
    image_root: Path | None = None,
    batch_size: int = 4,
    lr: str = "1e-2",
) -> list[str]:
    """``train_longclip.py`` arguments for a CPU run of a tiny model: two steps unless ``extra``
    says otherwise (argparse keeps the last ``--max-steps``), PCA on 2 components, no workers,
    no logging."""
    argv = ["--base-model", str(base), "--data", str(data), "--output-dir", str(output)]
    if image_root is not None:
        argv += ["--image-root", str(image_root)]
    return [
        *argv,
        "--cpu",
        "--batch-size",
        str(batch_size),
        "--max-steps",
        "2",
        "--lr",
        lr,
        "--warmup-steps",
        "0",
        "--pca-dim",
        "2",
        "--num-workers",
        "0",
        "--report-to",
        "none",
        *extra,
    ]


def launcher(processes: int) -> list[str]:
    """The command that starts a script in ``processes`` processes: torchrun for more than one
    (``accelerate launch --cpu`` starts a single process, docs/distributed-training.md)."""
    if processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return [sys.executable]


def run_launched(
    processes: int, script: Path, *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``script`` in ``processes`` processes (:func:`launcher`) and return the completed
    process, its output captured.

    A launch that does not finish in :data:`ATTEMPT_SECONDS` gets SIGABRT, which makes every
    Python process in it print its stacks (``PYTHONFAULTHANDLER``), then is killed. A multi-process
    launch is tried once more after such a hang, with the stacks in a warning: CI once saw two
    gloo processes stop in their first collectives, not reproduced in 25 local runs; a hang in
    our own code hangs the second attempt too, and the test fails with the stacks."""
    env = {**(env or os.environ), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    command = [*launcher(processes), str(script), *arguments]
    for attempt in (1, 2):
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
            try:
                stdout, stderr = process.communicate(timeout=ATTEMPT_SECONDS)
                return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
            except subprocess.TimeoutExpired:
                stacks = _abort_tree(process)
        message = f"{' '.join(command[:6])} ... hung for {ATTEMPT_SECONDS} s (attempt {attempt}); stacks:\n{stacks}"
        if processes == 1 or attempt == 2:
            raise AssertionError(message)
        warnings.warn(message, stacklevel=2)


def _abort_tree(process: subprocess.Popen) -> str:
    """SIGABRT to the launch and every process under it (torchrun starts each worker in a session
    of its own), so that each prints its stacks to the captured stderr, then SIGKILL to whatever
    is left; returns the end of what the launch printed."""
    root = psutil.Process(process.pid)
    tree = [*root.children(recursive=True), root]
    for sig, wait in ((signal.SIGABRT, 10), (signal.SIGKILL, 30)):
        for member in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            _, stderr = process.communicate(timeout=wait)
            return (stderr or "")[-12000:]
    return "(no output)"
