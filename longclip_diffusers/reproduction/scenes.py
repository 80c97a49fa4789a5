"""Deterministic procedural scenes: coloured shapes on a plain canvas, with a long and a short caption.

A scene holds 3 or 4 objects, each with a shape, a colour, a size and a cell of a 3x3 grid, all
different sizes so that one object is clearly the largest (the salient one). The long caption
describes every object, largest first, then how each object sits relative to the next: 45 to 65
tokens of the tiny vocabulary, past a small CLIP's 20-token context. The short caption is the
long caption's first sentence, which names the largest object: the rule Long-CLIP uses to get
short captions from ShareGPT4V (docs/pcm-loss.md), whose captions also open with the
most salient content.

Same ``(index, seed)`` -> the same scene, pixel for pixel and word for word, on any machine:
every random draw comes from a numpy generator seeded with ``[seed, index]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..errors import InvalidArgumentError

#: Colour words (all single tokens of the tiny vocabulary) and the RGB they are drawn in.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
    "pink": (245, 150, 200),
    "white": (240, 240, 240),
}
SHAPES = ("square", "circle", "triangle", "star", "diamond")
#: Size words, largest first, with the object's extent as a fraction of the canvas side.
SIZES: tuple[tuple[str, float], ...] = (("huge", 0.40), ("large", 0.30), ("small", 0.20), ("tiny", 0.12))
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "middle", "right")
MIN_OBJECTS, MAX_OBJECTS = 3, 4
#: The sizes the largest object can have: a scene's objects all have different sizes.
LARGEST_SIZES = tuple(name for name, _ in SIZES[: len(SIZES) - MIN_OBJECTS + 1])
#: Prompt templates of the zero-shot task (the colour of the largest object; ``{}`` is the
#: colour). As with OpenAI's ImageNet templates, each class is described several ways (every
#: shape, both sizes the largest object can have) and its embedding is their mean.
ZERO_SHOT_TEMPLATES = tuple(f"a {size} {{}} {shape}" for size in LARGEST_SIZES for shape in SHAPES)
BACKGROUND = (32, 32, 32)
#: How far (fraction of the canvas) an object may sit from the centre of its grid cell.
JITTER = 0.04


@dataclass(frozen=True)
class SceneObject:
    """One shape: what it is, the words for it, and where it is (fractions of the canvas)."""

    shape: str
    colour: str
    size: str
    row: int
    column: int
    x: float
    y: float

    @property
    def extent(self) -> float:
        return dict(SIZES)[self.size]

    @property
    def place(self) -> str:
        """Where the object is, in words: "at the top left", "in the middle", "at the right"."""
        row, column = ROWS[self.row], COLUMNS[self.column]
        if row == column == "middle":
            return "in the middle"
        words = " ".join(word for word in (row, column) if word != "middle")
        return f"at the {words}"


@dataclass(frozen=True)
class Scene:
    """A rendered scene. ``objects`` are sorted largest first, so ``objects[0]`` is the salient one."""

    objects: tuple[SceneObject, ...]
    image: Image.Image
    long_caption: str
    short_caption: str

    @property
    def largest_colour(self) -> str:
        """The label of the zero-shot task: the colour of the largest object."""
        return self.objects[0].colour


def layout_scene(index: int, seed: int = 0) -> tuple[SceneObject, ...]:
    """Draw the objects of scene ``index`` of stream ``seed``, largest first."""
    if index < 0 or seed < 0:
        raise InvalidArgumentError(f"index and seed must be non-negative integers; got index={index}, seed={seed}")
    rng = np.random.default_rng([seed, index])
    count = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    sizes = np.sort(rng.choice(len(SIZES), count, replace=False))
    cells = rng.choice(len(ROWS) * len(COLUMNS), count, replace=False)
    # distinct (colour, shape) pairs keep every relation sentence unambiguous
    kinds = rng.choice(len(COLOURS) * len(SHAPES), count, replace=False)
    jitter = rng.uniform(-JITTER, JITTER, size=(count, 2))
    colours = list(COLOURS)
    objects = []
    for size, cell, kind, (dx, dy) in zip(sizes, cells, kinds, jitter):
        row, column = divmod(int(cell), len(COLUMNS))
        half = SIZES[int(size)][1] / 2
        objects.append(
            SceneObject(
                shape=SHAPES[int(kind) % len(SHAPES)],
                colour=colours[int(kind) // len(SHAPES)],
                size=SIZES[int(size)][0],
                row=row,
                column=column,
                x=_inside((column + 0.5) / len(COLUMNS) + float(dx), half),
                y=_inside((row + 0.5) / len(ROWS) + float(dy), half),
            )
        )
    return tuple(objects)


def long_caption(objects: tuple[SceneObject, ...]) -> str:
    """Every object, largest first, then where each one sits relative to the next."""
    described = [f"a {o.size} {o.colour} {o.shape} {o.place}." for o in objects]
    related = [
        f"the {a.colour} {a.shape} sits {_relation(a, b)} the {b.colour} {b.shape}."
        for a, b in zip(objects, objects[1:])
    ]
    return " ".join(described + related)


def short_caption(objects: tuple[SceneObject, ...]) -> str:
    """The largest object alone: the long caption's first sentence, without its full stop."""
    first = objects[0]
    return f"a {first.size} {first.colour} {first.shape} {first.place}"


def render_scene(objects: tuple[SceneObject, ...], image_size: int = 64) -> Image.Image:
    """Draw the objects (largest first, so smaller ones stay visible on top) on a plain canvas."""
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        draw.polygon(_outline(obj, image_size), fill=COLOURS[obj.colour])
    return image


def make_scene(index: int, seed: int = 0, image_size: int = 64) -> Scene:
    """Scene ``index`` of the stream ``seed``: layout, image and both captions."""
    objects = layout_scene(index, seed)
    return Scene(
        objects=objects,
        image=render_scene(objects, image_size),
        long_caption=long_caption(objects),
        short_caption=short_caption(objects),
    )


def iter_scenes(count: int, seed: int = 0, start: int = 0, image_size: int = 64) -> Iterator[Scene]:
    """Scenes ``start .. start + count - 1`` of the stream ``seed``."""
    for index in range(start, start + count):
        yield make_scene(index, seed, image_size)


def distinct_short_captions() -> int:
    """How many different short captions the generator can produce."""
    return len(COLOURS) * len(SHAPES) * len(LARGEST_SIZES) * len(ROWS) * len(COLUMNS)


def _inside(centre: float, half: float) -> float:
    """Move a centre so the whole object stays on the canvas."""
    return min(max(centre, half), 1.0 - half)


def _relation(a: SceneObject, b: SceneObject) -> str:
    if a.row != b.row:
        return "above" if a.row < b.row else "below"
    return "left of" if a.column < b.column else "right of"


def _outline(obj: SceneObject, image_size: int) -> list[tuple[float, float]]:
    """Polygon vertices, in pixels, of an object whose bounding box has side ``extent``."""
    cx, cy, half = obj.x * image_size, obj.y * image_size, obj.extent * image_size / 2
    if obj.shape == "square":
        return [(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half), (cx - half, cy + half)]
    if obj.shape == "triangle":
        return [(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)]
    if obj.shape == "diamond":
        return [(cx, cy - half), (cx + half, cy), (cx, cy + half), (cx - half, cy)]
    if obj.shape == "star":
        return _radial(cx, cy, [half if i % 2 == 0 else half * 0.45 for i in range(10)])
    return _radial(cx, cy, [half] * 24)


def _radial(cx: float, cy: float, radii: list[float]) -> list[tuple[float, float]]:
    """Vertices at the given radii, evenly spread in angle, the first one straight up."""
    step = 2 * math.pi / len(radii)
    return [(cx + r * math.sin(i * step), cy - r * math.cos(i * step)) for i, r in enumerate(radii)]
