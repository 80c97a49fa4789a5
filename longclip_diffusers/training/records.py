"""Reading image-caption lists: ShareGPT4V json, or JSON/JSONL/CSV with ``image``, ``caption``
and an optional ``short_caption`` (docs/pcm-loss.md)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataFormatError, InputNotFoundError, PathKindError

#: Caption file types :func:`read_records` reads.
CAPTION_SUFFIXES = (".json", ".jsonl", ".csv")


@dataclass(frozen=True)
class CaptionRecord:
    """One training pair; ``image`` is relative to the image root unless absolute."""

    image: str
    caption: str
    short_caption: str

    @classmethod
    def make(cls, image: str, caption: str, short_caption: str | None = None) -> CaptionRecord:
        caption = " ".join(caption.split())
        return cls(image, caption, short_caption.strip() if short_caption else first_sentence(caption))


def first_sentence(caption: str) -> str:
    """The caption up to its first ". ": ShareGPT4V captions open with a one-sentence summary,
    which Long-CLIP uses as the short caption."""
    return caption.split(". ")[0].strip()


def read_records(path: str | Path) -> list[CaptionRecord]:
    """All pairs of a ``.json`` (a list of ShareGPT4V entries or of ``{"image", "caption"}``
    objects), ``.jsonl`` or ``.csv`` file, in file order."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in CAPTION_SUFFIXES)[:3]
        raise PathKindError(
            f"--data {path} is a folder; it takes the caption file (.json, .jsonl or .csv). Fix: pass "
            + (f"the file in it, e.g. {path / inside[0]}" if inside else "the caption file's path")
            + (" (there: " + ", ".join(inside) + ")" if len(inside) > 1 else "")
        )
    if not path.is_file():
        raise InputNotFoundError(f"caption file {path} does not exist; pass --data PATH to a .json, .jsonl or .csv")
    suffix = path.suffix.lower()
    if suffix == ".json":
        entries = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(entries, list):
            raise DataFormatError(f"{path} must hold a JSON list of entries, not a {type(entries).__name__}")
    elif suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            entries = list(csv.DictReader(handle))
    else:
        raise DataFormatError(
            f"{path}: unknown caption file type {suffix!r}; use .json (ShareGPT4V or a list), .jsonl or .csv"
        )
    return [_record(entry, path, number) for number, entry in enumerate(entries, 1)]


def _record(entry: object, path: Path, number: int) -> CaptionRecord:
    if not isinstance(entry, dict) or not entry.get("image"):
        raise DataFormatError(f"{path}, entry {number}: needs an 'image' field with the image path")
    conversations = entry.get("conversations")
    if conversations is not None:
        if len(conversations) < 2 or "value" not in conversations[1]:
            raise DataFormatError(
                f"{path}, entry {number}: a ShareGPT4V entry holds its caption in conversations[1].value"
            )
        return CaptionRecord.make(entry["image"], conversations[1]["value"])
    if not entry.get("caption"):
        raise DataFormatError(f"{path}, entry {number}: needs a 'caption' field (or ShareGPT4V 'conversations')")
    return CaptionRecord.make(entry["image"], entry["caption"], entry.get("short_caption"))
