"""``longclip-diffusers demo``: start the Gradio long-prompt studio (``demos/gradio_app.py``).

The options are defined here once; ``demos/gradio_app.py`` reuses :func:`add_demo_arguments`
when run as a script, so both entry points take the same flags.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from .options import add_model_sources

#: Where the app lives in a source checkout (the demo is not part of the installed package,
#: so that the library does not depend on gradio).
APP_PATH = Path(__file__).resolve().parents[2] / "demos" / "gradio_app.py"


def add_demo_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The demo's flags: models, network binding and sharing."""
    add_model_sources(parser)
    parser.add_argument(
        "--tiny-random",
        action="store_true",
        help="use tiny random-weight models built in code (no download; images are noise): "
        "for trying the UI on any machine",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--share",
        action="store_true",
        help="also open a public gradio.live link (off by default: the app stays local)",
    )
    return parser


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="start the Gradio long-prompt studio (stock vs Long-CLIP images side by side)",
        description="Start the Gradio long-prompt studio: a live token meter, and the stock CLIP "
        "and Long-CLIP images of one prompt side by side, same seed.",
    )
    add_demo_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    load_app().launch(args)
    return 0


def load_app():
    """Import ``demos/gradio_app.py`` from the source checkout."""
    if not APP_PATH.is_file():
        raise FileNotFoundError(
            f"the Gradio demo is not installed with the package (looked for {APP_PATH}); "
            "run it from a source checkout: `pip install -e '.[demo]'` in the repository, then "
            "`longclip-diffusers demo` or `python demos/gradio_app.py`"
        )
    name = "longclip_gradio_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, APP_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
