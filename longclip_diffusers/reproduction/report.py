"""Write the toy reproduction's results: JSON (the four arms' metrics), a Markdown table with the
paper's predictions checked, and a bar chart. Each file is written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from ..io.atomic import atomic_write_file
from ..length.stretching import stretched_length
from .claims import check_claims
from .evaluate import METRICS
from .experiment import ARMS, ExperimentConfig, ExperimentResult

HEADERS = {
    "long_i2t_r1": "long I2T R@1",
    "long_t2i_r1": "long T2I R@1",
    "short_i2t_r1": "short I2T R@1",
    "short_t2i_r1": "short T2I R@1",
    "zeroshot_acc": "zero-shot acc",
}


def results_json(result: ExperimentResult) -> dict[str, dict[str, float]]:
    """``{arm: {metric: fraction}}`` for the four arms, rounded to 4 decimals."""
    return {arm: {m: round(result.metrics[arm][m], 4) for m in METRICS} for arm in ARMS}


def results_markdown(result: ExperimentResult, command: str, quick: bool = False) -> str:
    """The table (percentages), the paper's predictions with verdicts, and the settings."""
    num_test = result.config.eval_scenes
    lines = [
        "# Long-CLIP's claims at toy scale",
        "",
        f"Made by `{command}` in {result.seconds['total'] / 60:.1f} min (training: pretraining "
        f"{result.seconds['pretrain'] / 60:.1f} min, "
        + ", ".join(f"{arm} {result.seconds[arm] / 60:.1f} min" for arm in ARMS[1:])
        + f"). Held-out test set: {num_test} scenes with distinct short captions. "
        "Numbers are percentages.",
        "",
        *(
            ["**Quick mode: a smoke test of the pipeline; these numbers say nothing about the method.**", ""]
            if quick
            else []
        ),
        "| arm | " + " | ".join(HEADERS[m] for m in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for arm in ARMS:
        lines.append(f"| `{arm}` | " + " | ".join(f"{100 * result.metrics[arm][m]:.1f}" for m in METRICS) + " |")
    descriptions = _descriptions(result.config)
    lines += ["", *(f"- `{arm}`: {descriptions[arm]}" for arm in ARMS), "", "## The paper's predictions", ""]
    for claim in check_claims(result.metrics, num_test):
        detail = "; ".join(
            f"{HEADERS[c.metric]} {100 * c.better:.1f} vs {100 * c.worse:.1f} "
            f"({100 * c.difference:+.1f}, 2 s.e. = {200 * c.standard_error:.1f})"
            for c in claim.comparisons
        )
        lines.append(f"- {claim.name} (`{claim.arm}` vs `{claim.reference}`): **{claim.verdict}**. {detail}.")
    lines += [
        "",
        "## Set-up",
        "",
        _setup(result),
        "",
        "```json",
        json.dumps(result.config_dict(), indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def _descriptions(config: ExperimentConfig) -> dict[str, str]:
    context, finetune = config.pretrain.context_length, config.finetune
    length = stretched_length(context, finetune.keep, finetune.ratio)
    return {
        "base": f"pretrained from scratch on short captions, {context}-token context (long captions cut to {context} tokens)",
        "direct_ft": f"plain interpolation to {length} positions (keep 0) + long captions only",
        "kps_only": f"knowledge-preserved stretching to {length} positions (keep {finetune.keep}) + long captions only",
        "kps_pcm": "stretching + primary component matching (long + short loss): the full method",
    }


def _setup(result: ExperimentResult) -> str:
    config = result.config
    pretrain, finetune = config.pretrain, config.finetune
    return (
        f"Scenes: 3 or 4 coloured shapes (8 colours, 5 shapes, 4 sizes, a 3x3 grid) on a "
        f"{pretrain.image_size}-pixel canvas. Long caption: every object, largest first, then how "
        "each sits relative to the next (44 to 67 tokens, 54 on average). Short caption: its first sentence, "
        "naming the largest object (9 or 10 tokens). The base is a "
        f"{pretrain.layers}-layer, {pretrain.width}-wide CLIP with a {pretrain.context_length}-token "
        f"context, trained from scratch on short captions only for {pretrain.schedule.steps} steps of "
        f"{pretrain.schedule.batch_size} fresh scenes. Each fine-tuning arm runs the project's trainer "
        f"(`training/train_longclip.py`) for {finetune.schedule.steps} steps of "
        f"{finetune.schedule.batch_size} on {finetune.train_scenes} other scenes, with the same seed "
        "and data order. The test scenes come from a third stream; captions are cut to each model's "
        "own context. Zero-shot: the colour of the largest object, class embeddings averaged over "
        "the templates `a {huge|large} <colour> <shape>`."
    )


def results_figure(result: ExperimentResult, path: Path) -> None:
    """Grouped bars: one group per metric, one bar per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(ARMS)
    for i, arm in enumerate(ARMS):
        positions = [k + (i - (len(ARMS) - 1) / 2) * width for k in range(len(METRICS))]
        values = [100 * result.metrics[arm][m] for m in METRICS]
        bars = axes.bar(positions, values, width, label=arm)
        axes.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    axes.set_xticks(range(len(METRICS)), [HEADERS[m] for m in METRICS])
    axes.set_ylabel("%")
    axes.set_ylim(0, 118)
    axes.set_title(f"Long-CLIP ablation at toy scale ({result.config.eval_scenes} held-out scenes)")
    axes.legend(ncols=len(ARMS), loc="upper center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_results(
    result: ExperimentResult, out_dir: str | Path, command: str, quick: bool = False, name: str = "reproduction"
) -> dict[str, Path]:
    """Write ``NAME.json``, ``NAME.md`` and ``NAME.png`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    paths = {suffix: out_dir / f"{name}.{suffix}" for suffix in ("json", "md", "png")}
    with atomic_write_file(paths["json"]) as staging:
        staging.write_text(json.dumps(results_json(result), indent=2) + "\n", encoding="utf-8")
    with atomic_write_file(paths["md"]) as staging:
        staging.write_text(results_markdown(result, command, quick), encoding="utf-8")
    with atomic_write_file(paths["png"]) as staging:
        results_figure(result, staging)
    return paths
