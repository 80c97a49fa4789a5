"""CLIP text encoders inside single files: ComfyUI text-encoder files and SD / SDXL / SD3 / Flux
checkpoints (docs/comfyui-nodes.md lists the forms).

A single file holds one or more text towers, each under a key prefix and in one of two layouts:

* ``"transformers"``: ``text_model.*`` keys (or, from transformers 5 and old SD1.x checkpoints,
  the same keys without ``text_model.``) and ``text_projection.weight``; ComfyUI's own files
  (``clip_l.safetensors``, ``clip_g.safetensors``), ComfyUI's ``clip_l.`` / ``clip_g.`` prefixed
  CLIP state dicts, SD1.x's ``cond_stage_model.transformer.``, SDXL's
  ``conditioner.embedders.0.transformer.``, SD3 / Flux's ``text_encoders.clip_l.transformer.``;
* ``"openai"``: the OpenAI / OpenCLIP layout of :mod:`.openai_keys` under a prefix, as SDXL keeps
  its OpenCLIP bigG (``conditioner.embedders.1.model.``).

Towers are found by their token embedding, whatever the prefix, so prefixes not listed above
work too. None of these files stores a config: the sizes are read from the shapes, the head count
is width // 64 (:data:`.openai_keys.HEAD_WIDTH`) and the activation follows the rule ComfyUI's
``comfy.sd.detect_te_model`` uses to tell the towers apart: 23 layers or more is an OpenCLIP
tower (ViT-H, bigG; GELU), fewer is OpenAI's CLIP (QuickGELU).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from ..constants import STOCK_LENGTH
from ..errors import CheckpointError, InvalidArgumentError
from ..length.stretching import DEFAULT_KEEP, DEFAULT_RATIO, stretch_position_table
from .model_building import assign_all_weights, build_without_init, rename_to_model_keys
from .openai_keys import (
    CLIP_BOS_TOKEN_ID,
    CLIP_EOS_TOKEN_ID,
    TEXT_POSITION_KEY,
    TextTower,
    openai_text_to_transformers,
)

#: The text-encoder slots of SD1.x / SDXL / SD3 / Flux, named as ComfyUI names them: CLIP-L,
#: and SDXL's / SD3's OpenCLIP bigG.
TOWERS: tuple[str, ...] = ("clip_l", "clip_g")

#: ComfyUI's ``detect_te_model`` takes a tower with a layer 22 for OpenCLIP ViT-H and one with a
#: layer 30 for bigG, both GELU; OpenAI's CLIP towers (QuickGELU) have 12.
OPENCLIP_MIN_LAYERS = 23

_HF_ANCHOR = "embeddings.token_embedding.weight"
_OPENAI_ANCHOR = "token_embedding.weight"
_PROJECTION = "text_projection"
_PROJECTION_WEIGHT = "text_projection.weight"

Shapes = Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class TextTowerInFile:
    """One text tower of a single file: its key ``prefix`` (before ``text_model.`` in the
    transformers layout), ``layout``, ``width`` and ``layers``."""

    prefix: str
    layout: str
    width: int
    layers: int
    has_text_model: bool = True

    @property
    def named_slot(self) -> str | None:
        """The slot the prefix names (``clip_l.``, ``text_encoders.clip_g.``, ...), if any."""
        return next((tower for tower in TOWERS if re.search(rf"(^|\.){tower}\.", self.prefix)), None)

    def describe(self) -> str:
        """A short description for messages: where it is and how big."""
        where = f"'{self.prefix}*'" if self.prefix else "the root"
        return f"{where} ({self.width} wide, {self.layers} layers)"

    def owns(self, key: str) -> bool:
        """Whether ``key`` belongs to this tower."""
        if not key.startswith(self.prefix):
            return False
        rest = key[len(self.prefix) :]
        if self.layout == "openai":
            return not rest.startswith("visual.")
        if self.has_text_model:
            return rest.startswith("text_model.") or rest.startswith(_PROJECTION)
        return rest.startswith(("embeddings.", "encoder.", "final_layer_norm.", _PROJECTION))


def find_text_towers(shapes: Shapes) -> list[TextTowerInFile]:
    """Every CLIP text tower in a file, given its keys and their shapes (so a large checkpoint can
    be inspected without reading its tensors)."""
    towers = []
    for key, shape in shapes.items():
        if key.endswith(_HF_ANCHOR):
            base = key[: -len(_HF_ANCHOR)]
            has_text_model = base.endswith("text_model.")
            prefix = base[: -len("text_model.")] if has_text_model else base
            layers = _count(shapes, re.escape(base) + r"encoder\.layers\.(\d+)\.")
            towers.append(TextTowerInFile(prefix, "transformers", int(shape[1]), layers, has_text_model))
        elif key.endswith(_OPENAI_ANCHOR) and f"{key[: -len(_OPENAI_ANCHOR)]}positional_embedding" in shapes:
            prefix = key[: -len(_OPENAI_ANCHOR)]
            layers = _count(shapes, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
            towers.append(TextTowerInFile(prefix, "openai", int(shape[1]), layers))
    return sorted(towers, key=lambda tower: tower.prefix)


def select_text_tower(
    towers: Sequence[TextTowerInFile], tower: str | None = None, source: str = "the file"
) -> TextTowerInFile:
    """The tower to load for slot ``tower`` (:data:`TOWERS`; None: the file's only one).

    A file with one tower gives it whatever the slot (the caller checks that it fits). Of several,
    the one whose prefix names the slot, else ``clip_l`` is the narrowest and ``clip_g`` the
    widest, as in every SD family.
    """
    if tower is not None and tower not in TOWERS:
        raise InvalidArgumentError(f"tower must be one of {', '.join(TOWERS)}; got {tower!r}")
    if not towers:
        raise CheckpointError(
            f"{source} holds no CLIP text encoder (no '*token_embedding.weight' key). Fix: pass a "
            "Long-CLIP / CLIP checkpoint, a ComfyUI text-encoder file, an SD1.x / SDXL / SD3 / Flux "
            "checkpoint, or a transformers model folder."
        )
    if len(towers) == 1:
        return towers[0]
    listing = "; ".join(t.describe() for t in towers)
    if tower is None:
        raise CheckpointError(
            f"{source} holds {len(towers)} text encoders ({listing}). Fix: choose one with "
            f"tower= {' or '.join(map(repr, TOWERS))} (the loader node's slot)."
        )
    named = [t for t in towers if t.named_slot == tower]
    if len(named) == 1:
        return named[0]
    widths = sorted({t.width for t in towers})
    width = widths[0] if tower == "clip_l" else widths[-1]
    candidates = [t for t in towers if t.width == width]
    if len(candidates) != 1:
        raise CheckpointError(
            f"{source} holds several text encoders ({listing}) and none is clearly its {tower}. "
            "Fix: save the one you want as a file of its own."
        )
    return candidates[0]


def keys_to_read(shapes: Shapes, tower: str | None = None) -> list[str]:
    """The keys a conversion of slot ``tower`` needs: the tower's own when the file holds several
    towers, or one transformers-layout tower under a prefix (a checkpoint's UNet and VAE stay on
    disk), else every key (an OpenAI / open_clip file may need its vision tower)."""
    towers = find_text_towers(shapes)
    if len(towers) < 2 and not any(t.prefix and t.layout == "transformers" for t in towers):
        return list(shapes)
    chosen = select_text_tower(towers, tower)
    return [key for key in shapes if chosen.owns(key)]


def text_tower_weights(
    state_dict: Mapping[str, torch.Tensor], tower: str | None = None, source: str = "the file"
) -> dict[str, torch.Tensor]:
    """The tower of slot ``tower`` as ``CLIPTextModelWithProjection`` keys (``text_model.*`` and,
    when the file has it, ``text_projection.weight``)."""
    chosen = select_text_tower(find_text_towers(_shapes(state_dict)), tower, source)
    own = {key[len(chosen.prefix) :]: value for key, value in state_dict.items() if chosen.owns(key)}
    if chosen.layout == "openai":
        return openai_text_to_transformers({k: v for k, v in own.items() if k not in ("attn_mask", "logit_scale")})
    weights = {}
    for key, value in own.items():
        if key == _PROJECTION:
            # ComfyUI's CLIPSave once stored the projection as OpenAI's matrix (used as x @ P)
            weights[_PROJECTION_WEIGHT] = value.t().contiguous()
        elif key.startswith(_PROJECTION):
            weights[key] = value
        elif not key.endswith("position_ids"):
            weights[key if chosen.has_text_model else f"text_model.{key}"] = value
    return weights


def text_config_from_weights(
    weights: Mapping[str, torch.Tensor],
    num_heads: int | None = None,
    bos_token_id: int = CLIP_BOS_TOKEN_ID,
    eos_token_id: int = CLIP_EOS_TOKEN_ID,
) -> CLIPTextConfig:
    """The ``CLIPTextConfig`` of ``text_model.*`` weights, read from their shapes as for an OpenAI
    file (:class:`~.openai_keys.TextTower`), the activation by :data:`OPENCLIP_MIN_LAYERS`."""
    vocab_size, width = _weight(weights, "text_model.embeddings.token_embedding.weight").shape
    projection = weights.get(_PROJECTION_WEIGHT)
    tower = TextTower(
        width=width,
        layers=_count(weights, r"text_model\.encoder\.layers\.(\d+)\."),
        vocab_size=vocab_size,
        context=_weight(weights, TEXT_POSITION_KEY).shape[0],
        embed_dim=projection.shape[0] if projection is not None else width,
        mlp_width=_weight(weights, "text_model.encoder.layers.0.mlp.fc1.weight").shape[0],
    )
    return tower.config(
        num_heads, bos_token_id, eos_token_id, "gelu" if tower.layers >= OPENCLIP_MIN_LAYERS else "quick_gelu"
    )


def convert_text_tower(
    state_dict: Mapping[str, torch.Tensor],
    kind: str = "text",
    tower: str | None = None,
    keep: int = DEFAULT_KEEP,
    ratio: float = DEFAULT_RATIO,
    num_heads: int | None = None,
    bos_token_id: int = CLIP_BOS_TOKEN_ID,
    eos_token_id: int = CLIP_EOS_TOKEN_ID,
    copy: bool = True,
    source: str = "the file",
) -> CLIPTextModel | CLIPTextModelWithProjection:
    """The text tower of slot ``tower`` of a single file as a float32 transformers model in eval
    mode: ``kind`` ``"text"`` or ``"text_with_projection"``. A 77-row position table is stretched
    with ``keep`` and ``ratio`` (248 rows by default; ``ratio=1`` keeps 77), as for OpenAI files.
    ``copy`` keeps the model from sharing memory with the caller's tensors."""
    weights = text_tower_weights(state_dict, tower, source)
    if kind == "full":
        raise CheckpointError(
            f"{source} holds text encoders only, but a CLIPModel needs the vision tower too. "
            "Fix: load it with load_text_encoder, or pass a full CLIP / Long-CLIP checkpoint."
        )
    if kind == "text_with_projection" and _PROJECTION_WEIGHT not in weights:
        raise CheckpointError(
            f"the text encoder in {source} has no text projection ('text_projection.weight'), which "
            "the clip_g slot pools from. Fix: load it into the clip_l slot (without projection), or "
            "use a file that keeps the projection."
        )
    if kind == "text":
        weights.pop(_PROJECTION_WEIGHT, None)
    config = text_config_from_weights(weights, num_heads, bos_token_id, eos_token_id)
    if config.max_position_embeddings == STOCK_LENGTH:
        weights[TEXT_POSITION_KEY] = stretch_position_table(weights[TEXT_POSITION_KEY], keep=keep, ratio=ratio)
        config.max_position_embeddings = weights[TEXT_POSITION_KEY].shape[0]
    cls = CLIPTextModelWithProjection if kind == "text_with_projection" else CLIPTextModel
    model = build_without_init(cls, config)
    try:
        assign_all_weights(model, rename_to_model_keys(model, weights, kind), copy=copy)
    except RuntimeError as exc:
        raise CheckpointError(
            f"the text encoder in {source} is incomplete or damaged ({str(exc).splitlines()[0]}). "
            "Fix: download or save the file again."
        ) from exc
    return model.eval()


def _shapes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state_dict.items()}


def _count(keys: Mapping[str, object], pattern: str) -> int:
    """One more than the highest block index matched by ``pattern``."""
    compiled = re.compile(pattern)
    indices = [int(m.group(1)) for key in keys if (m := compiled.match(key))]
    return max(indices) + 1 if indices else 0


def _weight(weights: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in weights:
        raise CheckpointError(
            f"the text encoder has no '{key}': the file is incomplete. Fix: download or save it again."
        )
    return weights[key]
