"""Released TULIP checkpoints (open_clip format) to TULIP transformers models.

TULIP's text tower is OpenAI CLIP's key for key (docs/checkpoint-format.md, docs/tulip.md) except that it
has no ``positional_embedding``. So the conversion reuses THE key map and config inference of
:mod:`longclip_diffusers.conversion.openai_keys` by presenting the tower as what it is, an OpenAI tower
whose position table has zero rows; the empty table is dropped again after mapping.
"""

from __future__ import annotations

import os

import torch

from ..errors import CheckpointError, InvalidArgumentError
from ..tulip.configuration import TulipConfig, tulip_text_config_from_clip
from ..tulip.full_model import TulipModel
from ..tulip.modeling import TulipTextModel, TulipTextModelWithProjection
from ..tulip.rope import DEFAULT_ROPE_BASE
from .model_building import ConvertKind, assign_all_weights, build_without_init, rename_to_model_keys
from .openai_keys import (
    CLIP_BOS_TOKEN_ID,
    CLIP_EOS_TOKEN_ID,
    LOGIT_SCALE_KEY,
    TEXT_POSITION_KEY,
    VISION_PREFIX,
    has_vision,
    infer_text_config,
    infer_vision_config,
    openai_text_to_transformers,
    openai_to_transformers,
)
from .read_checkpoint import as_state_dict, read_state_dict

#: The context TULIP's main run was trained at (TULIP paper section 4; docs/tulip.md).
TULIP_CONTEXT_LENGTH = 248
#: open_clip models with a separate text tower (``CustomTextCLIP``) keep it under this prefix.
OPEN_CLIP_TEXT_PREFIX = "text."

_POSITIONS = "positional_embedding"
_TOKENS = "token_embedding.weight"
_TEXT_CLASSES = {"text": TulipTextModel, "text_with_projection": TulipTextModelWithProjection}


def tulip_text_prefix(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The key prefix of a TULIP (RoPE) text tower in an OpenAI / open_clip state dict, or None
    when the state dict holds no such tower (no token embedding, or a position table: then it is
    CLIP or Long-CLIP)."""
    for prefix in ("", OPEN_CLIP_TEXT_PREFIX):
        if f"{prefix}{_TOKENS}" in state_dict:
            return None if f"{prefix}{_POSITIONS}" in state_dict else prefix
    return None


def is_tulip_state_dict(state_dict: dict[str, torch.Tensor]) -> bool:
    """Whether the state dict is a TULIP checkpoint: a CLIP text tower without position table."""
    return tulip_text_prefix(state_dict) is not None


def convert_tulip_checkpoint(
    source: str | os.PathLike | dict[str, torch.Tensor],
    kind: ConvertKind = "text_with_projection",
    *,
    num_heads: int | None = None,
    hidden_act: str = "gelu",
    max_position_embeddings: int = TULIP_CONTEXT_LENGTH,
    rope_theta: float = DEFAULT_ROPE_BASE,
    bos_token_id: int = CLIP_BOS_TOKEN_ID,
    eos_token_id: int = CLIP_EOS_TOKEN_ID,
) -> TulipModel | TulipTextModel | TulipTextModelWithProjection:
    """Convert a TULIP checkpoint (a ``.pt``/``.safetensors`` file or a state dict; a bare state
    dict or ``{"state_dict": ...}``, keys possibly prefixed ``module.``) to a float32 model in
    eval mode: ``kind`` ``"text_with_projection"`` (default), ``"text"``, or ``"full"`` (a
    :class:`TulipModel` with CLIP's vision tower, for evaluation).

    ``hidden_act`` is exact GELU as released (docs/tulip.md); ``num_heads`` overrides
    width // 64. The RoPE base is ``rope_theta`` (10000 in the paper's main run, which trained at
    248 tokens, so no NTK scaling); the config records those 248 as ``trained_length`` whatever
    ``max_position_embeddings`` the model is set up for, and NTK scaling by
    :func:`~longclip_diffusers.set_context_length` starts from there.
    """
    if kind not in ("full", *_TEXT_CLASSES):
        raise InvalidArgumentError(f"kind must be 'full', 'text' or 'text_with_projection'; got {kind!r}")
    if isinstance(source, (str, os.PathLike)):
        state_dict = read_state_dict(source)
    else:
        state_dict = as_state_dict(source, "the state dict passed in")
    flat = _as_openai_layout(state_dict)
    if kind == "full":
        if not has_vision(flat):
            raise CheckpointError(
                "the TULIP checkpoint has no vision tower (no 'visual.' keys), so it cannot become a "
                "full model. Fix: convert it as a text encoder (kind='text_with_projection', CLI --text-only)."
            )
        weights = openai_to_transformers(flat)
    else:
        weights = openai_text_to_transformers(flat)
    del weights[TEXT_POSITION_KEY]

    text_config = tulip_text_config_from_clip(
        infer_text_config(flat, "", num_heads, bos_token_id, eos_token_id),
        hidden_act=hidden_act,
        max_position_embeddings=max_position_embeddings,
        trained_length=TULIP_CONTEXT_LENGTH,
        rope_theta=rope_theta,
    )
    if kind == "full":
        config = TulipConfig(
            text_config=text_config,
            vision_config=infer_vision_config(flat, num_heads),
            projection_dim=text_config.projection_dim,
        )
        model = build_without_init(TulipModel, config)
    else:
        model = build_without_init(_TEXT_CLASSES[kind], text_config)
    caller_owns_tensors = not isinstance(source, (str, os.PathLike))
    assign_all_weights(model, rename_to_model_keys(model, weights, kind), copy=caller_owns_tensors)
    return model.eval()


def _as_openai_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The TULIP tower with un-prefixed OpenAI keys and a zero-row position table, plus the
    vision tower and logit scale when present.

    TULIP's stage-2 script swaps the RoPE tower into an open_clip CLIP model without deleting
    the model's own (then unused) 77-row ``positional_embedding``, so a full released checkpoint
    carries one: it is dropped here. That is also why such a file cannot be told from plain CLIP
    by its keys and needs this explicit conversion (or ``convert --tulip``)."""
    prefix = next((p for p in ("", OPEN_CLIP_TEXT_PREFIX) if f"{p}{_TOKENS}" in state_dict), None)
    if prefix is None or f"{prefix}{_POSITIONS}_res" in state_dict:
        raise CheckpointError(
            "not a TULIP checkpoint: "
            + ("it has Long-CLIP's two position tables" if prefix is not None else "no 'token_embedding.weight'")
            + ". Fix: convert CLIP / Long-CLIP checkpoints with convert_checkpoint(), and pass "
            "TULIP's open_clip file here."
        )
    if prefix:
        flat = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
        flat.update({k: v for k, v in state_dict.items() if k.startswith(VISION_PREFIX) or k == LOGIT_SCALE_KEY})
    else:
        # open_clip models built by TULIP's scripts may also carry the tower under "text."
        flat = {key: value for key, value in state_dict.items() if not key.startswith(OPEN_CLIP_TEXT_PREFIX)}
    tokens = flat[_TOKENS]
    flat[_POSITIONS] = tokens.new_empty(0, tokens.shape[1])
    return flat
