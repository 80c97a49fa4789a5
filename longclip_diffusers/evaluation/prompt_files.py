"""Prompt lists for ``eval generation``: plain text, JSON lines, or DPG-Bench's csv.

* ``.txt``: one prompt per line (blank lines skipped); a prompt's id is its line number.
* ``.jsonl``: one object per line with a ``"prompt"`` (and optionally an ``"id"``).
* ``.csv``: DPG-Bench's ``dpg_bench.csv`` (TencentQQGYLab/ELLA, ``dpg_bench/``), one row per
  question with the columns ``item_id, text, keywords, proposition_id, dependency,
  category_broad, category_detailed, tuple, question_natural_language``; the prompt is ``text``,
  its id ``item_id`` (the name DPG-Bench gives its image), rows of one item taken once. Any csv
  with ``text`` and ``item_id`` (or ``id``) columns reads the same way (docs/generation-eval.md).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataFormatError, InputNotFoundError

#: File suffixes :func:`read_prompts` reads.
PROMPT_FILE_SUFFIXES = (".txt", ".jsonl", ".csv")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Prompt:
    """One prompt: ``id`` names its images and sheet (file-name safe), ``text`` is generated from."""

    id: str
    text: str


def read_prompts(path: str | Path, limit: int | None = None) -> list[Prompt]:
    """The prompts of ``path`` in file order (the first ``limit`` when given), with unique ids."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"no prompt file at {path}. Fix: pass a .txt, .jsonl or DPG-Bench .csv file.")
    readers = {".txt": _read_txt, ".jsonl": _read_jsonl, ".csv": _read_csv}
    if path.suffix.lower() not in readers:
        raise DataFormatError(
            f"{path.name}: unknown prompt file type. Fix: use {', '.join(PROMPT_FILE_SUFFIXES)} "
            "(one prompt per line, JSON lines with a 'prompt' field, or DPG-Bench's csv)."
        )
    pairs = readers[path.suffix.lower()](path)
    prompts: list[Prompt] = []
    seen: dict[str, str] = {}
    for raw_id, text in pairs[:limit]:
        prompt_id = _UNSAFE.sub("_", str(raw_id)).strip("._") or "prompt"
        if prompt_id in seen:
            raise DataFormatError(
                f"{path.name}: prompts {seen[prompt_id]!r} and {raw_id!r} both have the id {prompt_id!r}. "
                "Fix: give every prompt its own id."
            )
        seen[prompt_id] = str(raw_id)
        prompts.append(Prompt(prompt_id, text))
    if not prompts:
        raise DataFormatError(f"{path.name} holds no prompt. Fix: give at least one.")
    return prompts


def _read_txt(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(f"{number:04d}", line.strip()) for number, line in enumerate(lines, 1) if line.strip()]


def _read_jsonl(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataFormatError(f"{path.name} line {number} is not JSON ({exc}). Fix: one object per line.") from exc
        text = record.get("prompt") if isinstance(record, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise DataFormatError(
                f'{path.name} line {number} has no "prompt" text. Fix: write {{"prompt": "..."}} on each line.'
            )
        pairs.append((str(record.get("id", f"{number:04d}")), text.strip()))
    return pairs


def _read_csv(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        id_column = next((name for name in ("item_id", "id") if name in columns), None)
        if "text" not in columns or id_column is None:
            raise DataFormatError(
                f"{path.name} has the columns {', '.join(columns) or 'none'}; a prompt csv needs 'text' and "
                "'item_id' (DPG-Bench's dpg_bench.csv). Fix: pass that file, or a .txt / .jsonl list."
            )
        texts: dict[str, str] = {}
        for row in reader:
            texts.setdefault(row[id_column], (row["text"] or "").strip())
    return [(item, text) for item, text in texts.items() if text]
