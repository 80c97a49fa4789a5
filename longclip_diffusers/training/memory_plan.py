"""``train_longclip.py --dry-run``: how much GPU memory a run needs per process, from the model's
real shapes, before anything is trained, written or downloaded beyond its config.

The model is built on PyTorch's ``meta`` device from its config (a transformers ``CLIPModel``
folder or hub id: its ``config.json``; a checkpoint file: the shapes in its header), so the
parameter counts are the model's own. Per process, in GiB:

* **parameters**: float32 master weights of every tower that is loaded (the vision tower is not
  with ``--image-features``); mixed precision autocasts the compute and keeps these in float32.
* **gradients**: float32, for the trainable parameters.
* **optimizer**: AdamW's two float32 moments per trainable parameter.
* **activations**: what autograd keeps for the backward pass, per transformer layer and token:
  the two LayerNorm inputs, the attention input, q, k, v and the attention output, the MLP
  input, and the MLP's hidden activation before and after GELU: ``8 h + 2 i`` values for width
  ``h`` and MLP width ``i`` (Korthikanti et al., 2022, "Reducing Activation Recomputation in
  Large Transformer Models", section 4.1, without dropout, which CLIP does not use, and without
  the attention matrix, which SDPA's fused kernels do not store). With gradient checkpointing a
  layer keeps only its input (``h``) and one layer at a time is recomputed. Values take 2 bytes
  under bf16/fp16 autocast, 4 in float32. Tokens are an upper bound: every caption at the full
  length (long and short captions; the trainer cuts each batch after its longest caption), and
  the vision tower's patches when it trains (a frozen tower keeps nothing; its forward needs one
  layer at a time). Rows are the micro-batch with ``--micro-batch``, else the per-process batch.
* **reserve**: the CUDA context and the allocator's slack, a fixed allowance.

With FSDP (full sharding) parameters, gradients and optimizer states are split over the
processes, and the largest layer is gathered whole (twice: in use and prefetched).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

from ..conversion.openai_keys import OPENAI_CONTEXT_LENGTH, has_vision, infer_clip_config
from ..errors import CheckpointError
from ..length.stretching import stretched_length

GIB = 1024**3
#: CUDA context (about 0.5 GiB on recent GPUs) plus the caching allocator's fragmentation.
RESERVE_GIB = 1.5
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class TowerShape:
    """A transformer tower's sizes and the part of its parameters the run holds and trains."""

    width: int
    mlp_width: int
    layers: int
    tokens: int  # per sample, the upper bound of the run
    parameters: int
    trainable: int
    loaded: bool
    stores_activations: bool


@dataclass(frozen=True)
class MemoryPlan:
    """Per-process memory of a run, in GiB, and what it was computed for."""

    processes: int
    sharding: str
    precision: str
    batch_size: int
    rows_per_pass: int
    text: TowerShape
    vision: TowerShape
    parameters_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    reserve_gib: float
    gpu_memory_gib: float | None

    @property
    def total_gib(self) -> float:
        return self.parameters_gib + self.gradients_gib + self.optimizer_gib + self.activations_gib + self.reserve_gib

    @property
    def fits(self) -> bool | None:
        return None if self.gpu_memory_gib is None else self.total_gib <= self.gpu_memory_gib

    def to_dict(self) -> dict:
        return {**asdict(self), "total_gib": self.total_gib, "fits": self.fits}

    def report(self) -> str:
        """The plan as the lines ``--dry-run`` prints."""
        text, vision = self.text, self.vision
        vision_state = (
            "not loaded (cached image features)"
            if not vision.loaded
            else f"{_millions(vision.parameters)} params, {'trained' if vision.trainable else 'frozen'}"
        )
        lines = [
            f"memory plan per process: {self.processes} process(es), "
            f"{'FSDP full sharding' if self.sharding == 'fsdp' else 'DDP (nothing sharded)'}, "
            f"{self.precision}, batch {self.batch_size} per process, {self.rows_per_pass} rows per pass",
            f"  text tower    {_millions(text.parameters)} params ({_millions(text.trainable)} trained), "
            f"{text.layers} layers x {text.width} wide, {text.tokens} tokens per sample",
            f"  vision tower  {vision_state}",
            f"  parameters    {self.parameters_gib:8.2f} GiB",
            f"  gradients     {self.gradients_gib:8.2f} GiB",
            f"  optimizer     {self.optimizer_gib:8.2f} GiB  (AdamW, two float32 moments)",
            f"  activations   {self.activations_gib:8.2f} GiB",
            f"  reserve       {self.reserve_gib:8.2f} GiB  (CUDA context, allocator)",
            f"  total         {self.total_gib:8.2f} GiB",
        ]
        if self.gpu_memory_gib is not None:
            margin = self.gpu_memory_gib - self.total_gib
            verdict = f"yes, {margin:.1f} GiB to spare" if self.fits else f"no, {-margin:.1f} GiB short"
            lines.append(f"fits {self.gpu_memory_gib:g} GiB: {verdict}")
        return "\n".join(lines)


def model_config(source: str | os.PathLike) -> CLIPConfig:
    """The ``CLIPConfig`` of ``--base-model`` without its weights: a folder's or hub repo's
    ``config.json``, or the shapes in a checkpoint file (safetensors header, or a weights-only
    memory-mapped pickle; with the ``open_clip_config.json`` beside it, if any)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return CLIPConfig.from_pretrained(path)
    if path.is_file():
        return _config_of_checkpoint(path)
    from ..constants import KNOWN_CHECKPOINTS
    from ..io.loading import resolve_source

    if str(source) in KNOWN_CHECKPOINTS:  # a checkpoint file has no config: read its shapes
        return _config_of_checkpoint(resolve_source(source))
    from huggingface_hub import hf_hub_download

    return CLIPConfig.from_pretrained(Path(hf_hub_download(str(source), "config.json")).parent)


def _config_of_checkpoint(path: Path) -> CLIPConfig:
    from ..conversion.convert import tower_settings

    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: handle.get_slice(key).get_shape() for key in handle.keys()}  # noqa: SIM118
        state_dict = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    else:
        loaded = torch.load(path, map_location="meta", weights_only=True, mmap=True)
        state_dict = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
    if not has_vision(state_dict):
        raise CheckpointError(f"'{path}' has no vision tower; the trainer needs a full CLIP checkpoint")
    # the special ids change no shape; any pair inside the vocabulary passes the config's check
    vocab = state_dict["token_embedding.weight"].shape[0] if "token_embedding.weight" in state_dict else 2
    return infer_clip_config(state_dict, None, vocab - 2, vocab - 1, tower_settings(path, None))


def memory_plan(args: argparse.Namespace, config: CLIPConfig | None = None) -> MemoryPlan:
    """The plan for parsed training ``args`` (``config`` defaults to :func:`model_config`)."""
    config = config or model_config(args.base_model)
    with torch.device("meta"):
        model = CLIPModel(config)
    text_cfg: CLIPTextConfig = config.text_config  # type: ignore[assignment]
    vision_cfg: CLIPVisionConfig = config.vision_config  # type: ignore[assignment]
    positions = text_cfg.max_position_embeddings
    if positions <= OPENAI_CONTEXT_LENGTH:
        positions = stretched_length(positions, args.keep, args.ratio)
    text_params = _count(model.text_model) + _count(model.text_projection) + 1  # + logit scale
    # the stretched table replaces the stock one; its first --keep rows are frozen
    text_params += (positions - text_cfg.max_position_embeddings) * text_cfg.hidden_size
    vision_params = _count(model.vision_model) + _count(model.visual_projection)
    cached = getattr(args, "image_features", None) is not None
    trains_vision = not args.freeze_vision
    short = positions if args.short_loss_weight > 0 else 0
    text = TowerShape(
        width=text_cfg.hidden_size,
        mlp_width=text_cfg.intermediate_size,
        layers=text_cfg.num_hidden_layers,
        tokens=positions + short,
        parameters=text_params,
        trainable=text_params - args.keep * text_cfg.hidden_size,
        loaded=True,
        stores_activations=True,
    )
    vision = TowerShape(
        width=vision_cfg.hidden_size,
        mlp_width=vision_cfg.intermediate_size,
        layers=vision_cfg.num_hidden_layers,
        tokens=(int(vision_cfg.image_size) // int(vision_cfg.patch_size)) ** 2 + 1,  # type: ignore[arg-type]
        parameters=vision_params,
        trainable=vision_params if trains_vision else 0,
        loaded=not cached,
        stores_activations=trains_vision,
    )
    processes, sharding = args.plan_processes, args.plan_sharding
    shards = processes if sharding == "fsdp" else 1
    precision = _precision(args)
    value_bytes = 4 if precision == "fp32" else 2
    loaded = text.parameters + (vision.parameters if vision.loaded else 0)
    trainable = text.trainable + vision.trainable
    rows = args.micro_batch or args.batch_size
    parameters = loaded * FLOAT32_BYTES / shards
    if sharding == "fsdp":
        parameters += 2 * _largest_layer(model, vision.loaded) * FLOAT32_BYTES
    activations = _activation_bytes(
        [text, vision] if vision.loaded else [text], rows, value_bytes, args.gradient_checkpointing
    )
    global_batch = args.batch_size * processes
    # logits of both losses in both directions, their softmax and gradients, float32
    activations += 8 * args.batch_size * global_batch * FLOAT32_BYTES
    return MemoryPlan(
        processes=processes,
        sharding=sharding,
        precision=precision,
        batch_size=args.batch_size,
        rows_per_pass=rows,
        text=text,
        vision=vision,
        parameters_gib=parameters / GIB,
        gradients_gib=trainable * FLOAT32_BYTES / shards / GIB,
        optimizer_gib=2 * trainable * FLOAT32_BYTES / shards / GIB,
        activations_gib=activations / GIB,
        reserve_gib=RESERVE_GIB,
        gpu_memory_gib=args.gpu_memory,
    )


def print_memory_plan(args: argparse.Namespace) -> MemoryPlan:
    """Print :func:`memory_plan` (and its JSON, for scripts) and return it."""
    plan = memory_plan(args)
    print(plan.report())
    print(json.dumps(plan.to_dict()))
    return plan


def _activation_bytes(towers: list[TowerShape], rows: int, value_bytes: int, checkpointing: bool) -> float:
    """Activations kept for the backward pass, plus the working set of one layer."""
    kept, working = 0.0, 0.0
    for tower in towers:
        per_layer = 8 * tower.width + 2 * tower.mlp_width  # values per token
        layer_working = rows * tower.tokens * per_layer * value_bytes
        working = max(working, layer_working)
        if not tower.stores_activations:
            continue
        stored = tower.width if checkpointing else per_layer
        # + the embeddings' output and the final LayerNorm's input
        kept += rows * tower.tokens * (tower.layers * stored + 2 * tower.width) * value_bytes
    return kept + (working if checkpointing or not any(t.stores_activations for t in towers) else 0)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _largest_layer(model: CLIPModel, with_vision: bool) -> int:
    layers = list(model.text_model.encoder.layers)
    if with_vision:
        layers += list(model.vision_model.encoder.layers)
    return max(_count(layer) for layer in layers)


def _precision(args: argparse.Namespace) -> str:
    """The autocast precision a GPU run uses: ``--mixed-precision``, bf16 by default."""
    if args.mixed_precision in (None, "bf16"):
        return "bf16 autocast"
    return "fp16 autocast" if args.mixed_precision == "fp16" else "fp32"


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f}M" if count < 1e9 else f"{count / 1e9:.2f}B"
