"""Side-by-side sheets of images generated from one prompt and seed."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from ..errors import InvalidArgumentError

_CAPTION_HEIGHT = 24
_GAP = 8


def side_by_side(images: Sequence[Image.Image], labels: Sequence[str] = ()) -> Image.Image:
    """One image holding ``images`` left to right on a white background, each with its label
    (if given) in a strip above it."""
    if not images:
        raise InvalidArgumentError("side_by_side needs at least one image")
    if labels and len(labels) != len(images):
        raise InvalidArgumentError(f"got {len(labels)} labels for {len(images)} images")
    top = _CAPTION_HEIGHT if labels else 0
    width = sum(image.width for image in images) + _GAP * (len(images) - 1)
    height = top + max(image.height for image in images)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for index, image in enumerate(images):
        sheet.paste(image.convert("RGB"), (x, top))
        if labels:
            draw.text((x + 4, 4), labels[index], fill="black")
        x += image.width + _GAP
    return sheet


def stacked(images: Sequence[Image.Image]) -> Image.Image:
    """One image holding ``images`` top to bottom on a white background (e.g. rows made by
    :func:`side_by_side`, one per seed)."""
    if not images:
        raise InvalidArgumentError("stacked needs at least one image")
    width = max(image.width for image in images)
    sheet = Image.new("RGB", (width, sum(image.height for image in images) + _GAP * (len(images) - 1)), "white")
    y = 0
    for image in images:
        sheet.paste(image.convert("RGB"), (0, y))
        y += image.height + _GAP
    return sheet
