"""Zero-shot classification sets: ImageNet in ImageFolder layout, CIFAR-10/100 python batches.

- ``imagenet``: ``root/<class folder>/<image>``, classes in sorted folder order (as
  torchvision's ``ImageFolder``). Class names come from ``root/classnames.txt`` (one per line,
  in that order) or ``root/classnames.json`` (a list, or a folder -> name mapping), else from
  the folder names. ImageNet's folders are WordNet ids (``n01440764``), so give the class-name
  file for meaningful prompts.
- ``cifar10`` / ``cifar100``: the published python version (``cifar-10-batches-py/test_batch``
  + ``batches.meta``; ``cifar-100-python/test`` + ``meta``, fine labels), under ``root`` or
  ``root`` itself, read with :func:`~.safe_pickle.load_array_pickle` (no code can run, no
  torchvision needed). Test split.

Underscores in class names become spaces ("aquarium_fish" -> "aquarium fish").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
from PIL import Image

from ..errors import DataFormatError, InputNotFoundError
from .registry import load_named
from .safe_pickle import load_array_pickle

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


@dataclass
class ClassificationDataset:
    """``images[i]`` (a path or a PIL image) belongs to class ``labels[i]`` of ``classnames``."""

    name: str
    classnames: list[str]
    images: Sequence[Path | Image.Image]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)


class ArrayImages(Sequence[Image.Image]):
    """A ``[N, H, W, 3]`` uint8 array seen as a sequence of PIL images, made on access."""

    def __init__(self, pixels: np.ndarray):
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    @overload
    def __getitem__(self, index: int) -> Image.Image: ...

    @overload
    def __getitem__(self, index: slice) -> ArrayImages: ...

    def __getitem__(self, index: int | slice) -> Image.Image | ArrayImages:
        if isinstance(index, slice):
            return ArrayImages(self.pixels[index])
        return Image.fromarray(self.pixels[index])


def load_imagenet(root: str | Path) -> ClassificationDataset:
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        raise DataFormatError(f"{root} has no class folders: pass the ImageFolder root (e.g. val/)")
    images, labels = [], []
    for label, folder in enumerate(folders):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        images += files
        labels += [label] * len(files)
    if not images:
        raise DataFormatError(f"the class folders of {root} hold no images")
    names = _imagefolder_classnames(root, [f.name for f in folders])
    return ClassificationDataset("imagenet", names, images, labels)


def _imagefolder_classnames(root: Path, folders: list[str]) -> list[str]:
    txt, js = root / "classnames.txt", root / "classnames.json"
    if txt.is_file():
        names = [line.strip() for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif js.is_file():
        data = json.loads(js.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            missing = [f for f in folders if f not in data]
            if missing:
                raise DataFormatError(f"{js} has no name for folders {missing[:5]}: add them")
            names = [data[f] for f in folders]
        else:
            names = list(data)
    else:
        names = folders
    if len(names) != len(folders):
        source = txt if txt.is_file() else js
        raise DataFormatError(
            f"{source} lists {len(names)} class names but {root} has {len(folders)} class "
            "folders: give one name per folder, in sorted folder order"
        )
    return [_readable(n) for n in names]


def load_cifar10(root: str | Path) -> ClassificationDataset:
    folder = _cifar_folder(Path(root), "cifar-10-batches-py", "test_batch")
    meta = load_array_pickle(folder / "batches.meta")
    batch = load_array_pickle(folder / "test_batch")
    return _cifar("cifar10", meta[b"label_names"], batch[b"data"], batch[b"labels"])


def load_cifar100(root: str | Path) -> ClassificationDataset:
    folder = _cifar_folder(Path(root), "cifar-100-python", "test")
    meta = load_array_pickle(folder / "meta")
    batch = load_array_pickle(folder / "test")
    return _cifar("cifar100", meta[b"fine_label_names"], batch[b"data"], batch[b"fine_labels"])


def _cifar_folder(root: Path, name: str, test_file: str) -> Path:
    for folder in (root / name, root):
        if (folder / test_file).is_file():
            return folder
    raise InputNotFoundError(f"no {name}/{test_file} under {root}: unpack the python version of the data set there")


def _cifar(name: str, label_names, data, labels) -> ClassificationDataset:
    pixels = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    names = [_readable(n.decode() if isinstance(n, bytes) else n) for n in label_names]
    return ClassificationDataset(name, names, ArrayImages(np.ascontiguousarray(pixels)), list(labels))


def _readable(name: str) -> str:
    return name.replace("_", " ").strip()


CLASSIFICATION_LOADERS: dict[str, Callable[[str | Path], ClassificationDataset]] = {
    "imagenet": load_imagenet,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
}


def load_classification_dataset(name: str, root: str | Path) -> ClassificationDataset:
    """Read the classification set ``name`` (one of :data:`CLASSIFICATION_LOADERS`)."""
    return load_named(CLASSIFICATION_LOADERS, name, root, "classification")
