"""Entry point of ``longclip-diffusers``: parses arguments and turns failures into one line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments, returning an exit code or None).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("convert", "stretch", "generate", "eval", "demo", "make_shards", "cache_features")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="longclip-diffusers",
        description="Long-CLIP / TULIP text encoders for Stable Diffusion pipelines.",
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on failure, print the full traceback instead of a one-line reason",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the CLI's contract: one line and a non-zero exit
        if args.traceback or os.environ.get("LONGCLIP_TRACEBACK"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
