"""The argument list and launcher every tiny training run in the tests shares."""

from __future__ import annotations

import sys
from pathlib import Path


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
