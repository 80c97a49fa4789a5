"""Reproduce Long-CLIP's ablation at toy scale, on procedural scenes, on a CPU.

    python benchmarks/reproduce.py            # the committed table: under 30 min on 2 CPU cores
    python benchmarks/reproduce.py --quick    # a few minutes: checks that everything runs

Pretrains a small CLIP on short captions, fine-tunes it three ways with the project's trainer
(direct fine-tuning, stretching only, stretching + primary component matching), scores the four
models on held-out scenes and writes ``reproduction.json``, ``reproduction.md`` and
``reproduction.png`` to ``--out-dir`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import torch

from longclip_diffusers.reproduction.experiment import QUICK_CONFIG, ExperimentConfig, run_experiment
from longclip_diffusers.reproduction.report import write_results

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny schedule (a few minutes): a smoke test, not a result"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=RESULTS_DIR,
        help=f"where the JSON, Markdown and PNG go (default {RESULTS_DIR})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice, one per core); 1 is faster on a machine other jobs are loading",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep the data and models here (default: a temporary folder, deleted at the end)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = QUICK_CONFIG if args.quick else ExperimentConfig()
    # the flags that change what runs (the output and work folders do not)
    flags = (["--quick"] if args.quick else []) + ([f"--threads {args.threads}"] if args.threads else [])
    command = " ".join(["python benchmarks/reproduce.py", *flags])
    if args.work_dir is not None:
        result = run_experiment(args.work_dir, config)
    else:
        with tempfile.TemporaryDirectory(prefix="longclip-reproduction-") as work_dir:
            result = run_experiment(work_dir, config)
    paths = write_results(result, args.out_dir, command, quick=args.quick)
    print(paths["md"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(shlex.quote(str(p)) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
