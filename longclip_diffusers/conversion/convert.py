"""Long-CLIP / OpenAI CLIP checkpoints to transformers CLIP models with the exact weights.

The key map and config inference are in :mod:`.openai_keys`, reading files in
:mod:`.read_checkpoint`, the stretching rule in :mod:`longclip_diffusers.length.stretching`; this module puts them together and
builds the model with the steps of :mod:`.model_building`, which TULIP's conversion
(:mod:`.tulip_checkpoint`) shares.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from ..errors import CheckpointError, InvalidArgumentError
from ..length.stretching import DEFAULT_KEEP, DEFAULT_RATIO, stretch_position_table
from .model_building import ConvertKind, assign_all_weights, build_without_init, rename_to_model_keys
from .openai_keys import (
    CLIP_BOS_TOKEN_ID,
    CLIP_EOS_TOKEN_ID,
    OPEN_CLIP_CONFIG_NAME,
    TEXT_POSITION_KEY,
    TowerSettings,
    has_plain_openai_positions,
    infer_clip_config,
    infer_text_config,
    open_clip_settings,
    openai_text_to_transformers,
    openai_to_transformers,
)
from .read_checkpoint import as_state_dict, read_state_dict
from .single_file import TOWERS, convert_text_tower, keys_to_read
from .tulip_checkpoint import convert_tulip_checkpoint, is_tulip_state_dict

if TYPE_CHECKING:
    from ..tulip import TulipModel, TulipTextModel, TulipTextModelWithProjection

_MODEL_CLASSES = {
    "full": CLIPModel,
    "text": CLIPTextModel,
    "text_with_projection": CLIPTextModelWithProjection,
}


def convert_checkpoint(
    source: str | os.PathLike | dict[str, torch.Tensor],
    kind: ConvertKind = "full",
    keep: int = DEFAULT_KEEP,
    ratio: float = DEFAULT_RATIO,
    num_heads: int | None = None,
    bos_token_id: int = CLIP_BOS_TOKEN_ID,
    eos_token_id: int = CLIP_EOS_TOKEN_ID,
    tulip: bool | None = None,
    tower: str | None = None,
    open_clip_config: str | os.PathLike | dict | None = None,
) -> (
    CLIPModel
    | CLIPTextModel
    | CLIPTextModelWithProjection
    | TulipModel
    | TulipTextModel
    | TulipTextModelWithProjection
):
    """Convert an OpenAI-layout checkpoint (a Long-CLIP ``.pt``/``.safetensors`` file, or a state
    dict already read) to a float32 transformers model in eval mode.

    ``kind``: ``"full"`` (``CLIPModel``, text + vision), ``"text"`` (``CLIPTextModel``) or
    ``"text_with_projection"``. Long-CLIP's two position tables are merged; a plain OpenAI CLIP
    table of 77 rows is stretched with ``keep`` and ``ratio`` (248 rows by default, ``ratio=1``
    keeps 77). ``num_heads`` overrides width // 64 (only for non-standard widths). A TULIP
    checkpoint (no text position table) becomes the TULIP counterpart of ``kind``
    (:func:`~longclip_diffusers.conversion.tulip_checkpoint.convert_tulip_checkpoint`); ``tulip=True`` forces that for
    TULIP's full released files, which keep open_clip's unused 77-row table (``False``: never).
    ``bos_token_id``/``eos_token_id`` go into the config; pooling reads the hidden state at
    ``eos_token_id``, so it must be the tokenizer's end token.

    ``open_clip_config`` (a path or the loaded dict; by default the ``open_clip_config.json``
    beside a checkpoint file, when there is one) gives what an open_clip checkpoint's tensors do
    not: the head counts of each tower and exact GELU instead of QuickGELU, as SDXL's OpenCLIP
    ViT-bigG/14 needs (:func:`~.openai_keys.open_clip_settings`).

    A file whose root is not in the OpenAI layout is a single file holding text encoders (a
    ComfyUI text-encoder file, an SD1.x / SDXL / SD3 / Flux checkpoint, transformers weights
    without their folder): its text encoder of slot ``tower`` (``"clip_l"`` / ``"clip_g"``;
    None for a file with one) is converted by
    :func:`~longclip_diffusers.conversion.single_file.convert_text_tower`.
    """
    if kind not in _MODEL_CLASSES:
        raise InvalidArgumentError(f"kind must be one of {', '.join(map(repr, _MODEL_CLASSES))}; got {kind!r}")
    if tower is not None and tower not in TOWERS:
        raise InvalidArgumentError(f"tower must be one of {', '.join(TOWERS)}; got {tower!r}")
    if isinstance(source, (str, os.PathLike)):
        state_dict = read_state_dict(source, select=partial(keys_to_read, tower=tower))
    else:
        state_dict = as_state_dict(source, "the state dict passed in")
    caller_owns_tensors = not isinstance(source, (str, os.PathLike))
    if tulip or (tulip is None and is_tulip_state_dict(state_dict)):
        return convert_tulip_checkpoint(
            state_dict, kind, num_heads=num_heads, bos_token_id=bos_token_id, eos_token_id=eos_token_id
        )

    if "token_embedding.weight" not in state_dict:
        where = "the state dict passed in" if caller_owns_tensors else f"'{source}'"
        return convert_text_tower(
            state_dict, kind, tower, keep, ratio, num_heads, bos_token_id, eos_token_id, caller_owns_tensors, where
        )

    settings = tower_settings(source, open_clip_config)
    config: CLIPConfig | CLIPTextConfig
    if kind == "full":
        weights = openai_to_transformers(state_dict, vision=True)
        config = infer_clip_config(state_dict, num_heads, bos_token_id, eos_token_id, settings)
        # a built CLIPConfig holds a CLIPTextConfig (transformers also annotates the dict it takes)
        text_config = cast(CLIPTextConfig, config.text_config)
    else:
        weights = openai_text_to_transformers(state_dict)
        config = text_config = infer_text_config(state_dict, "", num_heads, bos_token_id, eos_token_id, settings)

    if has_plain_openai_positions(state_dict):
        weights[TEXT_POSITION_KEY] = stretch_position_table(weights[TEXT_POSITION_KEY], keep=keep, ratio=ratio)
    text_config.max_position_embeddings = weights[TEXT_POSITION_KEY].shape[0]

    model = build_without_init(_MODEL_CLASSES[kind], config)
    assign_all_weights(model, rename_to_model_keys(model, weights, kind), copy=caller_owns_tensors)
    return model.eval()


def open_clip_config_beside(checkpoint: str | os.PathLike) -> Path | None:
    """The ``open_clip_config.json`` in a checkpoint file's folder, as open_clip's hub repos
    publish it next to ``open_clip_model.safetensors``; None when there is none."""
    path = Path(checkpoint).parent / OPEN_CLIP_CONFIG_NAME
    return path if path.is_file() else None


def tower_settings(
    source: str | os.PathLike | dict[str, torch.Tensor], open_clip_config: str | os.PathLike | dict | None
) -> TowerSettings:
    """The heads and activation a conversion uses: from ``open_clip_config`` (a path or a dict),
    else from the ``open_clip_config.json`` beside a checkpoint file, else OpenAI's."""
    if open_clip_config is None and isinstance(source, (str, os.PathLike)):
        open_clip_config = open_clip_config_beside(source)
    if open_clip_config is None:
        return TowerSettings()
    if isinstance(open_clip_config, dict):
        return open_clip_settings(open_clip_config)
    try:
        loaded = json.loads(Path(open_clip_config).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read the open_clip config '{open_clip_config}' ({exc}). Fix: pass the "
            "open_clip_config.json published with the checkpoint, or remove the broken file."
        ) from exc
    if not isinstance(loaded, dict):
        raise CheckpointError(
            f"'{open_clip_config}' is not an open_clip config (a JSON object). Fix: pass the right file."
        )
    return open_clip_settings(loaded)
