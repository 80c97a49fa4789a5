"""How long ``longclip-diffusers --help`` takes, and what importing the heavy libraries costs.

Before 0.2 the command imported torch, transformers and diffusers to build its parsers, so its
``--help`` paid at least what ``import torch, transformers, diffusers`` costs; now the parsers
come from torch-free constants. Each figure is the median of ``--runs`` fresh interpreters;
wall time and the child's CPU time are both recorded, since a loaded machine inflates the first.

    python benchmarks/bench_cli_startup.py --json benchmarks/results/bench_cli_startup_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "longclip-diffusers --help": [sys.executable, "-m", "longclip_diffusers.cli.main", "--help"],
    "longclip-diffusers generate --help": [sys.executable, "-m", "longclip_diffusers.cli.main", "generate", "--help"],
    "import torch, transformers, diffusers (what --help paid before 0.2)": [
        sys.executable,
        "-c",
        "import torch, transformers, diffusers.pipelines",
    ],
}


def _run_once(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per case (default: %(default)s)")
    parser.add_argument("--json", type=Path, required=True, metavar="FILE", help="where to write the results")
    parser.add_argument(
        "--before",
        type=Path,
        metavar="DIR",
        help="a source checkout of an earlier version (e.g. `git worktree add /tmp/v0.1 COMMIT`): "
        "its --help is timed too, run from DIR",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    cases: dict[str, tuple[list[str], dict[str, str] | None, Path | None]] = {
        name: (command, None, None) for name, command in CASES.items()
    }
    if args.before is not None:
        before = args.before.resolve()
        env = {**os.environ, "PYTHONPATH": str(before)}
        cases[f"longclip-diffusers --help of {args.before}"] = (CASES["longclip-diffusers --help"], env, before)
    results = {}
    for name, (command, env, cwd) in cases.items():
        runs = [_run_once(command, env, cwd) for _ in range(args.runs)]
        results[name] = {
            "median_wall_seconds": statistics.median(wall for wall, _ in runs),
            "median_cpu_seconds": statistics.median(cpu for _, cpu in runs),
            "runs": args.runs,
        }
        print(
            f"{name}: {results[name]['median_wall_seconds']:.2f} s wall, {results[name]['median_cpu_seconds']:.2f} s CPU"
        )
    report = {
        "benchmark": "CLI start-up: --help against the imports it used to pay for",
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
        "results": results,
        "command": "python benchmarks/bench_cli_startup.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
