"""Long-CLIP / OpenAI CLIP checkpoints to transformers CLIP models with the exact weights.

The key map and config inference are in :mod:`.openai_layout`, reading files in
:mod:`.checkpoint`, the stretching rule in :mod:`.stretch`; this module puts them together and
builds the model. Its model-building steps (:func:`build_without_init`,
:func:`rename_to_model_keys`, :func:`assign_all_weights`) are public so that other layouts
(TULIP's, :mod:`longclip_diffusers.tulip.convert`) build their models the same way.
"""

from __future__ import annotations

import os
from typing import Literal

import torch
from transformers import CLIPModel, CLIPTextModel, CLIPTextModelWithProjection

from .checkpoint import as_state_dict, read_state_dict
from .openai_layout import (
    CLIP_BOS_TOKEN_ID,
    CLIP_EOS_TOKEN_ID,
    TEXT_POSITION_KEY,
    has_plain_openai_positions,
    infer_clip_config,
    infer_text_config,
    openai_text_to_transformers,
    openai_to_transformers,
)
from .stretch import DEFAULT_KEEP, DEFAULT_RATIO, stretch_position_table

ConvertKind = Literal["full", "text", "text_with_projection"]

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
) -> CLIPModel | CLIPTextModel | CLIPTextModelWithProjection:
    """Convert an OpenAI-layout checkpoint (a Long-CLIP ``.pt``/``.safetensors`` file, or a state
    dict already read) to a float32 transformers model in eval mode.

    ``kind``: ``"full"`` (``CLIPModel``, text + vision), ``"text"`` (``CLIPTextModel``) or
    ``"text_with_projection"``. Long-CLIP's two position tables are merged; a plain OpenAI CLIP
    table of 77 rows is stretched with ``keep`` and ``ratio`` (248 rows by default, ``ratio=1``
    keeps 77). ``num_heads`` overrides width // 64 (only for non-standard widths). A TULIP
    checkpoint (no text position table) becomes the TULIP counterpart of ``kind``
    (:func:`~longclip_diffusers.tulip.convert_tulip_checkpoint`); ``tulip=True`` forces that for
    TULIP's full released files, which keep open_clip's unused 77-row table (``False``: never).
    ``bos_token_id``/``eos_token_id`` go into the config; pooling reads the hidden state at
    ``eos_token_id``, so it must be the tokenizer's end token.
    """
    if kind not in _MODEL_CLASSES:
        raise ValueError(f"kind must be one of {', '.join(map(repr, _MODEL_CLASSES))}; got {kind!r}")
    if isinstance(source, (str, os.PathLike)):
        state_dict = read_state_dict(source)
    else:
        state_dict = as_state_dict(source, "the state dict passed in")
    # TULIP (no text position table) has its own model classes; imported here because
    # longclip_diffusers.tulip builds on this module
    from .tulip.convert import convert_tulip_checkpoint, is_tulip_state_dict

    if tulip or (tulip is None and is_tulip_state_dict(state_dict)):
        return convert_tulip_checkpoint(
            state_dict, kind, num_heads=num_heads, bos_token_id=bos_token_id, eos_token_id=eos_token_id
        )

    if kind == "full":
        weights = openai_to_transformers(state_dict, vision=True)
        config = infer_clip_config(state_dict, num_heads, bos_token_id, eos_token_id)
        text_config = config.text_config
    else:
        weights = openai_text_to_transformers(state_dict)
        config = text_config = infer_text_config(state_dict, "", num_heads, bos_token_id, eos_token_id)

    if has_plain_openai_positions(state_dict):
        weights[TEXT_POSITION_KEY] = stretch_position_table(
            weights[TEXT_POSITION_KEY], keep=keep, ratio=ratio
        )
    text_config.max_position_embeddings = weights[TEXT_POSITION_KEY].shape[0]

    model = build_without_init(_MODEL_CLASSES[kind], config)
    caller_owns_tensors = not isinstance(source, (str, os.PathLike))
    assign_all_weights(model, rename_to_model_keys(model, weights, kind), copy=caller_owns_tensors)
    return model.eval()


def build_without_init(cls, config):
    """``cls(config)`` without random initialisation, for a model whose every weight is assigned
    next (:func:`assign_all_weights`). The model reads ``eos_token_id`` from the config when it is
    constructed, so the config must be final here."""
    from transformers.initialization import no_init_weights

    with no_init_weights():
        return cls(config)


def rename_to_model_keys(model, weights: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """``CLIPModel``-layout weights (``text_model.``, ``vision_model.``, projections) renamed to
    the keys of ``model`` converted as ``kind``: transformers 5's ``CLIPTextModel`` is flat (no
    ``text_model.``) and a ``"text"`` model has no projection."""
    if kind == "text":
        weights = {k: v for k, v in weights.items() if k.startswith("text_model.")}
    if any(key.startswith("text_model.") for key in model.state_dict()):
        return weights
    return {key[len("text_model.") :]: value for key, value in weights.items()}


def assign_all_weights(model, weights: dict[str, torch.Tensor], copy: bool) -> None:
    """Put ``weights`` into ``model`` as float32, strictly: a parameter without a checkpoint
    tensor would stay uninitialised memory (:func:`build_without_init`), so any missing or extra
    key raises. The tensors are assigned rather than copied in (a real-size L/14 loads in a
    fraction of the time and memory); ``copy`` keeps the model from sharing memory with a
    caller's dict."""
    tensors = {k: v.to(torch.float32, copy=copy).contiguous() for k, v in weights.items()}
    model.load_state_dict(tensors, strict=True, assign=True)
