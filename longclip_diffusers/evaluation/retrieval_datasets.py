"""Image-text retrieval sets, read from each one's published layout (docs/evaluation.md).

Each loader returns a :class:`RetrievalDataset`: image paths, captions, and the image index of
every caption. Nothing is decoded here; images are opened while encoding.

Layouts under ``root``:

- ``urban1k``: ``image/<name>.jpg`` and ``caption/<name>.txt`` (first line), 1000 pairs, as the
  Long-CLIP evaluation reads them.
- ``sharegpt4v``: ``share-captioner_coco_lcs_sam_1246k_1107.json`` (or ``root`` is the json
  file itself); the first 1000 entries, caption ``conversations[1].value`` with newlines as
  spaces, image path relative to the json's folder.
- ``dci`` (Long-DCI): TULIP's ``dci_long.csv`` (tab-separated, columns ``filepath`` and
  ``title``, paths relative to ``root``); or else the DCI release
  ``densely_captioned_images/annotations/*.json`` + ``photos/``, caption
  ``short_caption`` + ``extra_caption`` (the 7805 human-written descriptions).
- ``coco``: ``annotations/captions_val2017.json`` + ``val2017/`` (the 5k val images, the first
  5 captions of each, images by ascending id), as Long-CLIP's evaluation uses.
- ``flickr30k``: ``results_20130124.token`` (``<image>#<n>\\t<caption>`` lines) +
  ``flickr30k-images/``; every image (about 31.8k) as in the Long-CLIP paper.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataFormatError, InputNotFoundError, InvalidArgumentError
from .registry import load_named

SHAREGPT4V_JSON = "share-captioner_coco_lcs_sam_1246k_1107.json"
SHAREGPT4V_HELD_OUT = 1000
COCO_CAPTIONS_PER_IMAGE = 5


@dataclass
class RetrievalDataset:
    """Images, captions, and ``text_to_image[j]`` = the index of caption ``j``'s image."""

    name: str
    image_paths: list[Path]
    captions: list[str]
    text_to_image: list[int] = field(default_factory=list)

    def __post_init__(self):
        if not self.text_to_image:
            self.text_to_image = list(range(len(self.captions)))
        if len(self.text_to_image) != len(self.captions):
            raise InvalidArgumentError("text_to_image needs one image index per caption")

    def __len__(self) -> int:
        return len(self.captions)


def load_urban1k(root: str | Path) -> RetrievalDataset:
    root = Path(root)
    image_dir, caption_dir = _require_dir(root, "image"), _require_dir(root, "caption")
    captions, images = [], []
    for caption_file in sorted(caption_dir.glob("*.txt")):
        captions.append(_first_line(caption_file))
        images.append(image_dir / f"{caption_file.stem}.jpg")
    return RetrievalDataset("urban1k", _checked(images, caption_dir, "*.txt captions"), captions)


def load_sharegpt4v(root: str | Path) -> RetrievalDataset:
    root = Path(root)
    json_path = root if root.is_file() else root / SHAREGPT4V_JSON
    if not json_path.is_file():
        raise InputNotFoundError(
            f"{json_path} not found: pass --root the folder holding {SHAREGPT4V_JSON} "
            "(images relative to it) or the json file itself"
        )
    entries = json.loads(json_path.read_text(encoding="utf-8"))[:SHAREGPT4V_HELD_OUT]
    try:
        captions = [e["conversations"][1]["value"].replace("\n", " ") for e in entries]
        images = [json_path.parent / e["image"] for e in entries]
    except (KeyError, IndexError, TypeError) as exc:
        raise DataFormatError(
            f"{json_path} is not in ShareGPT4V's layout (entries with 'image' and a "
            f"'conversations' list of at least two turns): {exc!r}"
        ) from exc
    return RetrievalDataset("sharegpt4v", _checked(images, json_path, "entries"), captions)


def load_dci(root: str | Path) -> RetrievalDataset:
    root = Path(root)
    csv_path = root / "dci_long.csv"
    if csv_path.is_file():
        with csv_path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows and not {"filepath", "title"} <= rows[0].keys():
            raise DataFormatError(f"{csv_path} needs tab-separated columns 'filepath' and 'title'")
        images = [root / row["filepath"] for row in rows]
        return RetrievalDataset("dci", _checked(images, csv_path, "rows"), [row["title"] for row in rows])
    release = root / "densely_captioned_images"
    annotation_dir = _require_dir(release if release.is_dir() else root, "annotations")
    photo_dir = annotation_dir.parent / "photos"
    captions, images = [], []
    for path in sorted(annotation_dir.glob("*.json")):
        annotation = json.loads(path.read_text(encoding="utf-8"))
        text = f"{annotation.get('short_caption', '')} {annotation.get('extra_caption', '')}"
        captions.append(" ".join(text.split()))
        images.append(photo_dir / annotation["image"])
    return RetrievalDataset("dci", _checked(images, annotation_dir, "*.json annotations"), captions)


def load_coco(root: str | Path) -> RetrievalDataset:
    root = Path(root)
    ann_path = root / "annotations" / "captions_val2017.json"
    if not ann_path.is_file():
        raise InputNotFoundError(
            f"{ann_path} not found: pass --root the COCO folder holding annotations/captions_val2017.json and val2017/"
        )
    annotations = json.loads(ann_path.read_text(encoding="utf-8"))
    by_image: dict[int, list[str]] = {}
    for ann in annotations["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["caption"].strip())
    files = {img["id"]: img["file_name"] for img in annotations["images"]}
    images: list[Path] = []
    captions: list[str] = []
    owners: list[int] = []
    for image_id in sorted(files):
        texts = by_image.get(image_id, [])[:COCO_CAPTIONS_PER_IMAGE]
        if not texts:
            continue
        owners += [len(images)] * len(texts)
        captions += texts
        images.append(root / "val2017" / files[image_id])
    return RetrievalDataset("coco", _checked(images, ann_path, "images"), captions, owners)


def load_flickr30k(root: str | Path) -> RetrievalDataset:
    root = Path(root)
    token_path = root / "results_20130124.token"
    if not token_path.is_file():
        raise InputNotFoundError(
            f"{token_path} not found: pass --root the Flickr30k folder holding "
            "results_20130124.token and flickr30k-images/"
        )
    index: dict[str, int] = {}
    captions, owners = [], []
    for number, line in enumerate(token_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, caption = line.partition("\t")
        if not sep:
            raise DataFormatError(f"{token_path}:{number} is not '<image>#<n><TAB><caption>'")
        owners.append(index.setdefault(key.split("#")[0], len(index)))
        captions.append(caption.strip())
    images = [root / "flickr30k-images" / name for name in index]
    return RetrievalDataset("flickr30k", _checked(images, token_path, "lines"), captions, owners)


RETRIEVAL_LOADERS: dict[str, Callable[[str | Path], RetrievalDataset]] = {
    "urban1k": load_urban1k,
    "sharegpt4v": load_sharegpt4v,
    "dci": load_dci,
    "coco": load_coco,
    "flickr30k": load_flickr30k,
}


def load_retrieval_dataset(name: str, root: str | Path) -> RetrievalDataset:
    """Read the retrieval set ``name`` (one of :data:`RETRIEVAL_LOADERS`) from ``root``."""
    return load_named(RETRIEVAL_LOADERS, name, root, "retrieval")


def _require_dir(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        raise InputNotFoundError(f"{path} is not a folder: pass --root the folder that holds {name}/")
    return path


def _first_line(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].strip() if lines else ""


def _checked(images: list[Path], where: Path, what: str) -> list[Path]:
    """``images``, once known to be non-empty and all present: a wrong root fails here, before
    any model is loaded, rather than midway through encoding."""
    if not images:
        raise DataFormatError(f"found no {what} in {where}: is it the right folder?")
    missing = [str(path) for path in images if not path.is_file()]
    if missing:
        raise InputNotFoundError(
            f"{len(missing)} of {len(images)} images listed in {where} are missing (first: "
            f"{missing[0]}): pass the root the image paths are relative to"
        )
    return images
