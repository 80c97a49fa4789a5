"""Reproduce Long-CLIP's ablation at toy scale, on procedural scenes, on a CPU.

    python benchmarks/reproduce.py            # the committed table: under 30 min on 2 CPU cores
    python benchmarks/reproduce.py --quick    # under a minute: checks that everything runs

Pretrains a small CLIP on short captions, fine-tunes it three ways with the project's trainer
(direct fine-tuning, stretching only, stretching + primary component matching), scores the four
models on held-out scenes and writes ``reproduction.json``, ``reproduction.md`` and
``reproduction.png`` to ``--out-dir``: by default ``benchmarks/results`` (the committed results)
for a full run, and a new temporary folder for ``--quick``, whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import torch

from longclip_diffusers.cli.options import int_at_least
from longclip_diffusers.errors import PathKindError
from longclip_diffusers.io.atomic import check_output_path
from longclip_diffusers.reproduction.experiment import QUICK_CONFIG, ExperimentConfig, run_experiment
from longclip_diffusers.reproduction.report import write_results

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny schedule, under a minute on a CPU: a smoke test, not a result; written to a new "
        "temporary folder unless --out-dir is given, never over the committed results",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help=f"where the JSON, Markdown and PNG go (default: {RESULTS_DIR} for a full run, a new "
        "temporary folder with --quick)",
    )
    parser.add_argument(
        "--threads",
        type=int_at_least(1),
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, with the output folder settled and every path checked before the run."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for path, flag in ((args.out_dir, "--out-dir"), (args.work_dir, "--work-dir")):
            if path is not None:
                check_output_path(path, folder=True, flag=flag)
    except PathKindError as exc:
        parser.error(str(exc))
    if args.out_dir is None:
        args.out_dir = Path(tempfile.mkdtemp(prefix="longclip-reproduction-quick-")) if args.quick else RESULTS_DIR
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
