"""The effective-length experiment (Long-CLIP paper, section 3.1; docs/evaluation.md): retrieval R@1 as
captions are cut to more and more tokens. CLIP stops improving at about 20 tokens; a model that
really reads long text keeps rising up to its full length.

A length counts every token slot, start and end tokens included (77 = CLIP's whole context).
A model reads at most its own length, so past it its curve is flat by construction.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from ..constants import CURVE_LENGTHS
from ..errors import InvalidArgumentError, MissingDependencyError
from ..io.atomic import atomic_write_file
from .metrics import feature_recall_at_k
from .models import EvalModel
from .report import write_json
from .retrieval_datasets import RetrievalDataset

CURVE_JSON = "length_curve.json"
CURVE_PNG = "length_curve.png"


def length_curve(
    models: Sequence[EvalModel],
    dataset: RetrievalDataset,
    lengths: Sequence[int] = CURVE_LENGTHS,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> dict:
    """R@1 image-to-text and text-to-image of each model with captions cut to each length.

    Returns a JSON-ready dict: ``{"dataset", "lengths", "models": [{"name", "max_length",
    "image_to_text", "text_to_image"}]}`` with one R@1 fraction per length.
    """
    if not lengths or min(lengths) < 2:
        raise InvalidArgumentError(f"lengths {list(lengths)} must be at least 2 (start and end tokens)")
    curves = []
    for model in models:
        images = model.encode_images(
            dataset.image_paths, batch_size=batch_size, num_workers=num_workers, progress=progress
        )
        by_length: dict[int, dict] = {}
        for length in sorted({min(n, model.max_length) for n in lengths}):
            texts = model.encode_texts(dataset.captions, max_length=length, batch_size=batch_size, progress=progress)
            by_length[length] = feature_recall_at_k(images, texts, dataset.text_to_image, ks=(1,))
        points = [by_length[min(n, model.max_length)] for n in lengths]
        curves.append(
            {
                "name": model.name,
                "max_length": model.max_length,
                "image_to_text": [p["image_to_text"]["R@1"] for p in points],
                "text_to_image": [p["text_to_image"]["R@1"] for p in points],
            }
        )
    return {
        "dataset": dataset.name,
        "num_images": len(dataset.image_paths),
        "num_texts": len(dataset.captions),
        "lengths": list(lengths),
        "models": curves,
    }


def require_matplotlib() -> None:
    """Raise :class:`MissingDependencyError` unless matplotlib, which draws the curve, is
    installed. Callers check first, so that a missing plotter costs no model loading or
    encoding."""
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingDependencyError(
            "the length curve is drawn with matplotlib, which is not installed. "
            "Fix: pip install 'longclip-diffusers[eval]'"
        )


def plot_length_curve(curve: dict, path: str | Path) -> Path:
    """Draw ``curve`` (from :func:`length_curve`) as a PNG: one panel per direction, one line
    per model, R@1 in percent against caption length in tokens."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    labels = _labels([m["name"] for m in curve["models"]])
    for axis, direction, title in zip(axes, ("image_to_text", "text_to_image"), ("image -> text", "text -> image")):
        for label, model in zip(labels, curve["models"]):
            axis.plot(curve["lengths"], [100 * v for v in model[direction]], marker="o", label=label)
        axis.axvline(77, color="grey", linestyle=":", linewidth=1)
        axis.set(title=f"{curve['dataset']}: {title}", xlabel="caption tokens", xscale="log")
        axis.set_xticks(curve["lengths"], [str(n) for n in curve["lengths"]])
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("R@1 (%)")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    with atomic_write_file(path) as staging:
        figure.savefig(staging, format="png", dpi=120)
    plt.close(figure)
    return path


def write_length_curve(curve: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``length_curve.png`` and then ``length_curve.json`` into ``out_dir``, each
    atomically: the JSON is there only when the plot is too."""
    out_dir = Path(out_dir)
    png = plot_length_curve(curve, out_dir / CURVE_PNG)
    return write_json(curve, out_dir / CURVE_JSON), png


def _labels(names: list[str]) -> list[str]:
    short = [Path(n).name or n for n in names]
    return short if len(set(short)) == len(short) else names
