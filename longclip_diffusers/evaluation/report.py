"""Evaluation results as files and as plain-text tables (percentages, like the papers)."""

from __future__ import annotations

import json
from pathlib import Path

from ..io.atomic import atomic_write_file


def write_json(data: dict, path: str | Path) -> Path:
    """Write ``data`` as indented JSON, atomically (a failed write leaves no partial file)."""
    path = Path(path)
    with atomic_write_file(path) as staging:
        staging.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def retrieval_table(result: dict) -> str:
    """One row per direction, one column per R@k, from :func:`~.retrieval.evaluate_retrieval`."""
    ks = list(result["image_to_text"])
    rows = [
        [label, *(_percent(result[key][k]) for k in ks)]
        for label, key in (("image->text", "image_to_text"), ("text->image", "text_to_image"))
    ]
    title = (
        f"{result['dataset']}: {result['num_images']} images, {result['num_texts']} captions, "
        f"text cut at {result['max_length']} tokens ({result['model']})"
    )
    return f"{title}\n{_table(['direction', *ks], rows)}"


def zeroshot_table(result: dict) -> str:
    """Top-1 / top-5 accuracy from :func:`~.zeroshot.evaluate_zeroshot`."""
    keys = [k for k in ("top1", "top5") if k in result]
    title = (
        f"{result['dataset']}: {result['num_images']} images, {result['num_classes']} classes, "
        f"{result['num_templates']} templates ({result['model']})"
    )
    return f"{title}\n{_table(['metric', 'accuracy'], [[k, _percent(result[k])] for k in keys])}"


def length_curve_table(curve: dict) -> str:
    """R@1 per length (columns) for each model and direction (rows), from
    :func:`~.length_curve.length_curve`."""
    rows = [
        [f"{model['name']} {arrow}", *(_percent(v) for v in model[key])]
        for model in curve["models"]
        for arrow, key in (("i->t", "image_to_text"), ("t->i", "text_to_image"))
    ]
    header = ["R@1 at tokens", *(str(n) for n in curve["lengths"])]
    return f"{curve['dataset']}: R@1 (%) by caption length\n{_table(header, rows)}"
