"""Scenes on disk, in the JSONL layout the fine-tuning trainer reads (``image``, ``caption``,
``short_caption``), plus the held-out evaluation split."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import InvalidArgumentError
from ..io.atomic import atomic_output_dir
from .scenes import Scene, distinct_short_captions, iter_scenes, make_scene

DATA_FILE = "data.jsonl"
IMAGE_DIR = "images"


def write_scene_dataset(
    out_dir: str | Path, count: int, seed: int, image_size: int = 64, overwrite: bool = False
) -> Path:
    """Write scenes ``0 .. count - 1`` of stream ``seed`` as PNGs plus ``data.jsonl``.

    Each line is ``{"image": "images/000000.png", "caption": long, "short_caption": short,
    "label": colour of the largest object}``, image paths relative to ``out_dir`` (the
    ``--image-root``). Returns the path of ``data.jsonl``. Written atomically: an error leaves
    nothing behind.
    """
    out_dir = Path(out_dir)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        tmp = Path(tmp)
        (tmp / IMAGE_DIR).mkdir()
        lines = []
        scenes = iter_scenes(count, seed=seed, image_size=image_size)
        for index, scene in enumerate(tqdm(scenes, total=count, desc=f"writing scenes (seed {seed})")):
            relative = f"{IMAGE_DIR}/{index:06d}.png"
            scene.image.save(tmp / relative)
            lines.append(
                json.dumps(
                    {
                        "image": relative,
                        "caption": scene.long_caption,
                        "short_caption": scene.short_caption,
                        "label": scene.largest_colour,
                    }
                )
            )
        (tmp / DATA_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_dir / DATA_FILE


def held_out_scenes(count: int, seed: int, image_size: int = 64) -> list[Scene]:
    """The first ``count`` scenes of stream ``seed`` whose short captions are all different.

    Identical captions embed identically, and the recall metrics count ties against the model,
    so a repeated short caption could never be retrieved first; keeping one scene per short
    caption makes short-caption R@1 reachable (a perfect model scores 1.0).
    """
    possible = distinct_short_captions()
    if count > possible:
        raise InvalidArgumentError(
            f"asked for {count} held-out scenes, but only {possible} different short captions "
            f"exist; ask for at most {possible}"
        )
    chosen: dict[str, Scene] = {}
    index = 0
    while len(chosen) < count:
        scene = make_scene(index, seed, image_size)
        chosen.setdefault(scene.short_caption, scene)
        index += 1
    return list(chosen.values())
