"""``eval generation``: do images follow long prompts better with Long-CLIP? (docs/generation-eval.md)

Every pipeline asked (:data:`~longclip_diffusers.constants.GENERATION_PIPELINES`) generates each
prompt with the same seeds; a judge model scores every image against its prompt
(:mod:`.judge`); the scores are summarised per pipeline with paired bootstrap intervals
(:mod:`.statistics`) next to the time each image took. Images are written as they are made and
reused by a later run with the same settings, so an interrupted run resumes where it stopped.

Output folder::

    images/<prompt id>/<pipeline>/seed<seed>.png   (the time and a settings key in PNG text)
    sheets/<prompt id>.png                         (pipelines side by side, one row per seed)
    results.json, results.md
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin
from torch import nn
from tqdm.auto import tqdm

from ..constants import GENERATION_PIPELINES
from ..drop_in.pipeline_kinds import detect_slots
from ..drop_in.swap_encoders import long_clip_pair
from ..errors import IncompatibleEncoderError, InvalidArgumentError, MissingDependencyError
from ..io.atomic import atomic_write_file
from ..io.contact_sheet import side_by_side, stacked
from ..io.loading import load_text_encoder
from .judge import SCORES, score_images
from .models import EvalModel
from .prompt_files import Prompt
from .report import generation_markdown, write_json
from .statistics import paired_bootstrap

# PNG text keys: what an image was made with (so a resumed run reuses only matching images),
# and how long it took.
_KEY = "longclip_diffusers.key"
_SECONDS = "longclip_diffusers.seconds"


@dataclass(frozen=True)
class GenerationSettings:
    """What every pipeline generates with. The negative prompt is encoded by every pipeline
    (compel included), so an empty one is the empty string, not SDXL's zeroed embedding."""

    steps: int = 30
    guidance: float | None = None
    height: int | None = None
    width: int | None = None
    negative_prompt: str = ""


@dataclass
class Candidate:
    """One way of generating: ``make(prompt, seed)`` gives the image. ``identity`` is what the
    image depends on besides prompt and seed (sources, settings); an image on disk is reused only
    when it was made with the same."""

    name: str
    make: Callable[[str, int], Image.Image]
    identity: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GeneratedImage:
    path: Path
    seconds: float | None
    reused: bool


def generate_image(pipe, prompt_inputs: Mapping, seed: int, settings: GenerationSettings) -> Image.Image:
    """One image from ``pipe`` with ``prompt_inputs`` (``prompt=`` / ``negative_prompt=``, or
    embeddings) and ``settings``' steps, guidance and size (the negative prompt is the caller's),
    seeded on the CPU so every device starts from the same noise."""
    options = {} if settings.guidance is None else {"guidance_scale": settings.guidance}
    generator = torch.Generator("cpu").manual_seed(seed)
    return pipe(
        **prompt_inputs,
        num_inference_steps=settings.steps,
        height=settings.height,
        width=settings.width,
        generator=generator,
        **options,
    ).images[0]


def require_compel() -> None:
    """Raise :class:`MissingDependencyError` unless compel is installed (checked before any
    model is loaded)."""
    if importlib.util.find_spec("compel") is None:
        raise MissingDependencyError(
            "the compel pipeline chunks prompts with compel, which is not installed. "
            "Fix: pip install 'longclip-diffusers[compel]', or leave compel out of --pipelines."
        )


def build_candidates(
    stock,
    names: Sequence[str],
    settings: GenerationSettings,
    *,
    long_clip: str | nn.Module | None = None,
    tulip: str | nn.Module | None = None,
    sources: Mapping[str, str] | None = None,
) -> list[Candidate]:
    """The pipelines ``names`` (:data:`GENERATION_PIPELINES`) built on the ``stock`` diffusers
    pipeline, sharing its UNet and VAE:

    * ``stock``: the pipeline as it is (77 tokens; the rest of a long prompt is dropped);
    * ``compel``: the stock pipeline fed by compel, which encodes 75-token chunks separately;
    * ``longclip-<recipe>``: Long-CLIP (``long_clip``) swapped in with that layer recipe;
    * ``tulip``: the TULIP text encoder (``tulip``) swapped in, standard recipe.

    Encoders given as sources are loaded once, on the pipeline's device and dtype. ``sources``
    (``pipeline``, ``long_clip``, ``tulip``: how each was named) go into each candidate's identity.
    The pipelines' own step bars are turned off, ``stock``'s included: the run counts images.
    """
    unknown = [name for name in names if name not in GENERATION_PIPELINES]
    if unknown:
        raise InvalidArgumentError(
            f"unknown pipeline(s) {', '.join(unknown)}: choose from {', '.join(GENERATION_PIPELINES)}"
        )
    sources = dict(sources or {})
    base = {"pipeline": sources.get("pipeline"), "settings": asdict(settings)}
    candidates = []
    for name in names:
        if name == "stock":
            candidates.append(Candidate(name, _prompted(stock, settings), base))
        elif name == "compel":
            candidates.append(Candidate(name, _compel(stock, settings), base))
        elif name.startswith("longclip-"):
            # loaded by the first recipe, shared by the next
            long_clip = _encoder(stock, long_clip, "Long-CLIP", "--long-clip")
            _, pipe = long_clip_pair(stock, long_clip, recipe=name.removeprefix("longclip-"))
            identity = {**base, "long_clip": sources.get("long_clip")}
            candidates.append(Candidate(name, _prompted(pipe, settings), identity))
        else:
            tulip = _encoder(stock, tulip, "TULIP", "--tulip")
            _, pipe = long_clip_pair(stock, tulip, recipe="standard")
            candidates.append(Candidate(name, _prompted(pipe, settings), {**base, "tulip": sources.get("tulip")}))
    return candidates


def _encoder(stock, source, what: str, option: str) -> nn.Module:
    if source is None:
        raise InvalidArgumentError(f"no {what} text encoder was given. Fix: pass one with {option} SRC.")
    if isinstance(source, nn.Module):
        return source
    parameter = next(stock.text_encoder.parameters())
    return load_text_encoder(source, torch_dtype=parameter.dtype, device=parameter.device)


def _prompted(pipe, settings: GenerationSettings) -> Callable[[str, int], Image.Image]:
    pipe.set_progress_bar_config(disable=True)

    def make(prompt: str, seed: int) -> Image.Image:
        return generate_image(pipe, {"prompt": prompt, "negative_prompt": settings.negative_prompt}, seed, settings)

    return make


def _compel(stock, settings: GenerationSettings) -> Callable[[str, int], Image.Image]:
    require_compel()
    from compel import CompelForSD, CompelForSDXL

    kind = detect_slots(stock).kind
    if kind not in ("sd", "sdxl"):
        raise IncompatibleEncoderError(
            f"compel generation needs an SD1.x or SDXL text-to-image pipeline, got an SDXL {kind}. "
            "Fix: pass a base pipeline with --pipeline."
        )
    compel = CompelForSDXL(stock) if kind == "sdxl" else CompelForSD(stock)
    stock.set_progress_bar_config(disable=True)

    def make(prompt: str, seed: int) -> Image.Image:
        conditioning = compel(prompt, negative_prompt=settings.negative_prompt)
        inputs = {"prompt_embeds": conditioning.embeds, "negative_prompt_embeds": conditioning.negative_embeds}
        if kind == "sdxl":
            inputs["pooled_prompt_embeds"] = conditioning.pooled_embeds
            inputs["negative_pooled_prompt_embeds"] = conditioning.negative_pooled_embeds
        return generate_image(stock, inputs, seed, settings)

    return make


def generate_all(
    candidates: Sequence[Candidate],
    prompts: Sequence[Prompt],
    seeds: Sequence[int],
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> dict[tuple[str, str, int], GeneratedImage]:
    """Every image ``(candidate name, prompt id, seed)``, made now or reused from ``out_dir``.

    Prompt by prompt, then seed by seed, every candidate in turn: an interrupted run leaves whole
    prompts done, and no candidate's time is measured in a different phase of the run.
    """
    images = {}
    total = len(candidates) * len(prompts) * len(seeds)
    with tqdm(total=total, desc="generating", unit="image", disable=not progress) as bar:
        for prompt in prompts:
            for seed in seeds:
                for candidate in candidates:
                    path = Path(out_dir) / "images" / prompt.id / candidate.name / f"seed{seed}.png"
                    key = _image_key(candidate, prompt.text, seed)
                    images[candidate.name, prompt.id, seed] = _reused(path, key) or _made(
                        candidate, prompt.text, seed, path, key
                    )
                    bar.update()
                    bar.set_postfix(reused=sum(image.reused for image in images.values()))
    return images


def _image_key(candidate: Candidate, prompt: str, seed: int) -> str:
    identity = {"candidate": candidate.name, "identity": candidate.identity, "prompt": prompt, "seed": seed}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _reused(path: Path, key: str) -> GeneratedImage | None:
    if not path.is_file():
        return None
    with Image.open(path) as image:
        text = dict(getattr(image, "text", {}))
    if text.get(_KEY) != key:
        return None
    seconds = text.get(_SECONDS)
    return GeneratedImage(path, float(seconds) if seconds else None, reused=True)


def _made(candidate: Candidate, prompt: str, seed: int, path: Path, key: str) -> GeneratedImage:
    start = time.perf_counter()
    image = candidate.make(prompt, seed)  # a PIL image: the device has finished
    # rounded as stored, so a resumed run reports the same times
    seconds = round(time.perf_counter() - start, 6)
    info = PngImagePlugin.PngInfo()
    info.add_text(_KEY, key)
    info.add_text(_SECONDS, f"{seconds:.6f}")
    with atomic_write_file(path) as staging:
        image.save(staging, format="PNG", pnginfo=info)
    return GeneratedImage(path, seconds, reused=False)


def evaluate_generation(
    candidates: Sequence[Candidate],
    prompts: Sequence[Prompt],
    seeds: Sequence[int],
    judge: EvalModel,
    out_dir: str | Path,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    shuffle_seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
    description: Mapping | None = None,
) -> dict:
    """Generate (or reuse) every image, score it with ``judge``, and write ``results.json``,
    ``results.md`` and one contact sheet per prompt into ``out_dir``; returns the results.

    The baseline of the paired differences is ``stock`` when it is among the candidates, else
    the first candidate. ``description`` (sources, settings) is stored in the JSON as it is.
    """
    if not candidates or not prompts or not seeds:
        raise InvalidArgumentError("eval generation needs at least one pipeline, one prompt and one seed")
    out_dir = Path(out_dir)
    names = [candidate.name for candidate in candidates]
    images = generate_all(candidates, prompts, seeds, out_dir, progress=progress)
    grid = [[[images[name, prompt.id, seed].path for seed in seeds] for prompt in prompts] for name in names]
    scores = score_images(
        judge,
        [prompt.text for prompt in prompts],
        grid,
        shuffle_seed=shuffle_seed,
        batch_size=batch_size,
        progress=progress,
    )
    baseline = "stock" if "stock" in names else names[0]
    summary: dict[str, dict] = {name: {} for name in names}
    for score in SCORES:
        array = scores.score(score)
        if array is None:
            continue
        per_pipeline = paired_bootstrap(
            dict(zip(names, array)), baseline=baseline, resamples=resamples, confidence=confidence, seed=shuffle_seed
        )
        for name in names:
            summary[name][score] = per_pipeline[name]
    for name in names:
        timed = [images[name, p.id, seed].seconds for p in prompts for seed in seeds]
        seconds = [value for value in timed if value is not None]
        summary[name]["seconds_per_image"] = {
            "median": float(np.median(seconds)) if seconds else None,
            "mean": float(np.mean(seconds)) if seconds else None,
            "timed_images": len(seconds),
        }
    result = {
        "task": "generation",
        "judge": judge.name,
        "judge_max_length": judge.max_length,
        "pipelines": names,
        "baseline": baseline,
        "seeds": list(seeds),
        "num_prompts": len(prompts),
        "bootstrap": {
            "resamples": resamples,
            "confidence": confidence,
            "resampling": "prompts, then seeds within each prompt; the same draws for every pipeline",
        },
        **dict(description or {}),
        "summary": summary,
        "prompts": [
            {
                "id": prompt.id,
                "text": prompt.text,
                "sentences": scores.sentences[p],
                "judge_truncated": scores.truncated[p],
                "compared_with": prompts[scores.partner[p]].id if scores.partner is not None else None,
                "sheet": f"sheets/{prompt.id}.png",
            }
            for p, prompt in enumerate(prompts)
        ],
        "images": [
            {
                "pipeline": name,
                "prompt_id": prompt.id,
                "seed": seed,
                "path": images[name, prompt.id, seed].path.relative_to(out_dir).as_posix(),
                "seconds": images[name, prompt.id, seed].seconds,
                "reused": images[name, prompt.id, seed].reused,
                **{score: float(array[k, p, s]) for score in SCORES if (array := scores.score(score)) is not None},
            }
            for k, name in enumerate(names)
            for p, prompt in enumerate(prompts)
            for s, seed in enumerate(seeds)
        ],
    }
    _write_sheets(result, out_dir, progress)
    write_json(result, out_dir / "results.json")
    with atomic_write_file(out_dir / "results.md") as staging:
        staging.write_text(generation_markdown(result), encoding="utf-8")
    return result


def _write_sheets(result: dict, out_dir: Path, progress: bool) -> None:
    """``sheets/<prompt id>.png``: one row per seed, the pipelines side by side, each tile
    labelled with its pipeline, seed and whole-prompt cosine."""
    by_prompt: dict[str, dict[int, list[dict]]] = {}
    for record in result["images"]:
        by_prompt.setdefault(record["prompt_id"], {}).setdefault(record["seed"], []).append(record)
    for prompt_id, rows in tqdm(by_prompt.items(), desc="contact sheets", disable=not progress):
        sheet_rows = []
        for seed, records in rows.items():
            tiles = [Image.open(out_dir / record["path"]).convert("RGB") for record in records]
            labels = [f"{r['pipeline']} s{seed} {r['whole_prompt_cosine']:.3f}" for r in records]
            sheet_rows.append(side_by_side(tiles, labels))
        with atomic_write_file(out_dir / "sheets" / f"{prompt_id}.png") as staging:
            stacked(sheet_rows).save(staging, format="PNG")
