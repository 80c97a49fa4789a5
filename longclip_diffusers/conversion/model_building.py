"""The steps every checkpoint conversion builds its transformers model with.

Shared by the OpenAI / Long-CLIP conversion (:mod:`.convert`) and TULIP's
(:mod:`.tulip_checkpoint`): build without random initialisation, rename to the model's keys,
assign every weight strictly.
"""

from __future__ import annotations

from typing import Literal

import torch

#: What a conversion builds: the full CLIP model, the text tower, or the text tower with its
#: projection (SDXL's second slot, SD3's CLIP slots).
ConvertKind = Literal["full", "text", "text_with_projection"]


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
