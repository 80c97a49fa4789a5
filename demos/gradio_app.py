"""Runs the Gradio long-prompt studio from a source checkout: the same as ``longclip-diffusers demo``.

    python demos/gradio_app.py --tiny-random

The app itself is :mod:`longclip_diffusers.demo.gradio_app`, installed with the package.
"""

import sys

from longclip_diffusers.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
