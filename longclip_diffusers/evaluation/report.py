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


_GENERATION_COLUMNS = (
    ("whole_prompt_cosine", "whole-prompt cosine", 1, 3),
    ("sentence_cosine", "sentence cosine", 1, 3),
    ("sentence_share", "sentences matched (%)", 100, 1),
)


def generation_markdown(result: dict) -> str:
    """A Markdown table of :func:`~.generation.evaluate_generation`'s results: per pipeline, each
    score with its interval and its paired difference from the baseline, and the time per image."""
    baseline = result["baseline"]
    present = [column for column in _GENERATION_COLUMNS if column[0] in result["summary"][baseline]]
    header = ["pipeline"]
    for _, title, _, _ in present:
        header += [title, f"Δ vs {baseline}"]
    header.append("s / image (median)")
    rows = []
    for name in result["pipelines"]:
        entry = result["summary"][name]
        row = [name]
        for key, _, scale, digits in present:
            score = entry[key]
            row.append(_with_interval(score["mean"], score["ci"], scale, digits))
            delta = score.get("delta")
            row.append(_with_interval(delta["mean"], delta["ci"], scale, digits, signed=True) if delta else "—")
        seconds = entry["seconds_per_image"]["median"]
        row.append("—" if seconds is None else f"{seconds:.2f}")
        rows.append(row)
    bootstrap = result["bootstrap"]
    truncated = sum(prompt["judge_truncated"] for prompt in result["prompts"])
    notes = [
        f"Judge: {result['judge']} (reads {result['judge_max_length']} tokens"
        + (f"; {truncated} prompt(s) are longer and were cut for the whole-prompt score" if truncated else "")
        + ").",
        f"{result['num_prompts']} prompt(s) × {len(result['seeds'])} seed(s) ({', '.join(map(str, result['seeds']))}), "
        "the same seeds for every pipeline.",
        f"[low, high]: {100 * bootstrap['confidence']:g}% bootstrap intervals over {bootstrap['resamples']} resamples "
        f"({bootstrap['resampling']}); Δ: the paired difference from {baseline}.",
    ]
    if "sentence_share" not in result["summary"][baseline]:
        notes.append("Sentences matched needs two prompts or more (each image is compared with another prompt's).")
    table = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return (
        "# Long-prompt alignment of generated images\n\n"
        + "\n".join(table)
        + "\n\n"
        + "\n".join(f"- {note}" for note in notes)
        + "\n"
    )


def _with_interval(mean: float, interval: list[float], scale: float, digits: int, signed: bool = False) -> str:
    sign = "+" if signed else ""
    low, high = (scale * value for value in interval)
    return f"{scale * mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"
