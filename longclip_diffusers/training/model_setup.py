"""The model Long-CLIP fine-tuning starts from: a stretched base whose first ``keep`` text
positions cannot move (docs/stretching.md, docs/pcm-loss.md).

Only a base with CLIP's short context (at most 77 positions) is stretched. A longer base is
already a Long-CLIP (e.g. ``longclip-L.pt``, 248 rows): stretching it again would give 932 rows
that no released model or tokenizer uses, so it keeps its table and is fine-tuned as it is.

The frozen rows are a separate, non-trainable tensor rather than a gradient mask: AdamW's
decoupled weight decay would still shrink masked rows every step. For export the two parts are
merged back into one plain position table, so the saved model is an ordinary ``CLIPModel``.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ..compat import text_config, text_transformer
from ..conversion.openai_keys import OPENAI_CONTEXT_LENGTH
from ..length.stretching import position_table, stretch_text_encoder

if TYPE_CHECKING:
    from transformers import CLIPModel

    from .text_only import TextOnlyClip

logger = logging.getLogger(__name__)

ModuleT = TypeVar("ModuleT", bound=nn.Module)
PreparedT = TypeVar("PreparedT", bound="CLIPModel | TextOnlyClip")

#: Long-CLIP resets the logit scale to ln(100), CLIP's capped value, before fine-tuning (docs/pcm-loss.md).
INITIAL_LOGIT_SCALE = math.log(100.0)


class SplitPositionEmbedding(nn.Module):
    """A position table stored as frozen leading rows (a buffer) + trained trailing rows."""

    frozen: torch.Tensor

    def __init__(self, table: torch.Tensor, keep: int):
        super().__init__()
        self.register_buffer("frozen", table[:keep].detach().clone())
        self.trained = nn.Parameter(table[keep:].detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        """The full table (CLIP's embeddings read ``position_embedding.weight.shape``)."""
        return torch.cat([self.frozen, self.trained])

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(position_ids, self.weight)


def freeze_leading_positions(model: ModuleT, keep: int) -> ModuleT:
    """Make rows ``0..keep-1`` of the text position table untrainable (in place)."""
    if keep > 0:
        text_transformer(model).embeddings.position_embedding = SplitPositionEmbedding(
            position_table(model).weight, keep
        )
    return model


def merge_position_table(model: ModuleT) -> ModuleT:
    """Undo :func:`freeze_leading_positions` (in place): one plain ``nn.Embedding`` table."""
    embeddings = text_transformer(model).embeddings
    split = embeddings.position_embedding
    if isinstance(split, SplitPositionEmbedding):
        table = split.weight.detach()
        rows, width = table.shape
        plain = nn.Embedding(rows, width, device=table.device, dtype=table.dtype)
        plain.weight.data.copy_(table)
        embeddings.position_embedding = plain
    return model


def restore_export_layout(model: nn.Module) -> nn.Module:
    """Undo the training layout of :func:`prepare_longclip_model` (in place): one plain position
    table (:func:`merge_position_table`) and a scalar logit scale, as ``CLIPModel`` saves it."""
    merge_position_table(model)
    scale = getattr(model, "logit_scale", None)
    if isinstance(scale, nn.Parameter) and scale.ndim == 1:
        model.logit_scale = nn.Parameter(scale.detach().reshape(()), requires_grad=scale.requires_grad)
    return model


def empty_like_prepared(model: nn.Module, keep: int) -> nn.Module:
    """A model of the class, config and training layout of a :func:`prepare_longclip_model`
    result, with its weights on the meta device (nothing allocated): what the gathered weights of
    a sharded run are loaded into for export (:mod:`.fsdp_export`)."""
    from transformers import CLIPTextModelWithProjection

    from .text_only import TextOnlyClip

    with torch.device("meta"):
        if isinstance(model, TextOnlyClip):
            twin: nn.Module = TextOnlyClip(CLIPTextModelWithProjection(model.config))
        else:
            twin = type(model)(model.config)
        freeze_leading_positions(twin, keep)
        twin.logit_scale = nn.Parameter(torch.empty(1))
    return twin


def prepare_longclip_model(
    model: PreparedT,
    keep: int,
    ratio: float,
    freeze_vision: bool = False,
    gradient_checkpointing: bool = False,
) -> PreparedT:
    """Turn a loaded ``CLIPModel`` into Long-CLIP's starting point (in place): SDPA attention,
    knowledge-preserved stretching of a base with at most 77 positions (a longer base is
    already stretched and keeps its table), logit scale ln(100) (a one-element vector, which
    FSDP can shard; :func:`restore_export_layout` undoes both for export), rows ``< keep`` frozen,
    everything else trainable (the vision tower too unless ``freeze_vision``)."""
    model.set_attn_implementation("sdpa")
    positions = text_config(model).max_position_embeddings
    if positions <= OPENAI_CONTEXT_LENGTH:
        stretch_text_encoder(model, keep=keep, ratio=ratio)
    else:
        logger.warning(
            "the base already has %d text positions (more than CLIP's %d): not stretched again, "
            "ratio %g unused; rows < %d frozen",
            positions,
            OPENAI_CONTEXT_LENGTH,
            ratio,
            keep,
        )
    model.requires_grad_(True)
    scale = model.logit_scale
    # FSDP (both torch.distributed.fsdp wrappers) refuses 0-d parameters, and CLIP's logit scale
    # is one; a one-element vector trains the same and restore_export_layout makes it a scalar again
    model.logit_scale = nn.Parameter(torch.full((1,), INITIAL_LOGIT_SCALE, dtype=scale.dtype, device=scale.device))
    freeze_leading_positions(model, keep)
    if freeze_vision and hasattr(model, "vision_model"):  # a TextOnlyClip has no vision tower
        model.vision_model.requires_grad_(False)
        model.visual_projection.requires_grad_(False)
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model
