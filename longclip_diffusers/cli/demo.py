"""``longclip-diffusers demo``: start the Gradio long-prompt studio
(:mod:`longclip_diffusers.demo.gradio_app`), which needs the ``[demo]`` extra."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import socket
import sys

from ..errors import MissingDependencyError, ServerAddressError
from .options import add_model_sources, add_tiny_random, port_number

#: The one-line fix when gradio is missing.
DEMO_INSTALL = 'pip install "longclip-diffusers[demo]"'


def add_demo_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The demo's flags: models, network binding and sharing."""
    add_model_sources(parser)
    add_tiny_random(parser, "for trying the UI on any machine")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=7860, help="port to listen on (default: %(default)s)")
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
        "and Long-CLIP images of one prompt side by side, same seed. Needs the [demo] extra "
        f"({DEMO_INSTALL}).",
    )
    add_demo_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_port(args.host, args.port)
    load_app().launch(args)
    return 0


def check_port(host: str, port: int) -> None:
    """Refuse, before the models load, an address the page cannot be served on, naming the flags
    to change (gradio's own message names ``launch()``'s ``server_port``)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            if sys.platform != "win32":
                # as uvicorn, which gradio serves with: a port left in TIME_WAIT is free to reuse
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            other = port + 1 if port < 65535 else port - 1
            raise ServerAddressError(
                f"port {port} on {host} is already in use. Fix: pass another --port (e.g. --port {other}) "
                "or stop what is listening there."
            ) from None
        raise ServerAddressError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}). Fix: check --host and --port."
        ) from None


def load_app():
    """The app module; a :class:`~longclip_diffusers.MissingDependencyError` naming the install
    command when gradio is not installed."""
    if importlib.util.find_spec("gradio") is None:
        raise MissingDependencyError(f"the demo needs gradio, which is not installed: {DEMO_INSTALL}")
    from ..demo import gradio_app

    return gradio_app
