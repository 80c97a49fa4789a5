"""The state dicts from which ComfyUI builds a 248-token CLIP object (Long-CLIP-L + stretched bigG).

ComfyUI sizes a text encoder by its weights: a CLIP-L whose
``text_model.embeddings.position_embedding.weight`` has 248 rows becomes a Long-CLIP tower with
a 248-token tokenizer (docs/comfyui.md), and current ComfyUI does the same for SDXL's
clip_g. So Long-CLIP enters ComfyUI as state dicts in its layout (``text_model.*`` keys,
``text_projection.weight``, the layout of :func:`~longclip_diffusers.io.export.prefixed_state_dict`)
handed to ``comfy.sd.load_text_encoder_state_dicts``: the Long-CLIP-L encoder in place of the
CLIP object's clip_l and, for SDXL, its clip_g with the position table stretched by
knowledge-preserved stretching, so that both towers read 248 tokens (a public Long-CLIP node
leaves clip_g at 77).

Nothing here imports ComfyUI; the node in ``demos/comfyui`` makes the call.
"""

from __future__ import annotations

import torch
from torch import nn

from ..compat import text_config
from ..conversion.openai_keys import TEXT_POSITION_KEY
from ..errors import IncompatibleEncoderError
from ..io.export import prefixed_state_dict
from ..length.stretching import stretch_plan, stretch_position_table
from ..length.tokens import LONG_LENGTH

POSITION_IDS_KEY = "text_model.embeddings.position_ids"
TOKEN_EMBEDDING_KEY = "text_model.embeddings.token_embedding.weight"
#: Where a ComfyUI CLIP object's ``get_sd()`` keeps each tower's transformer.
TOWER_PREFIXES = {"clip_l": "clip_l.transformer.", "clip_g": "clip_g.transformer."}


def comfy_towers(clip_state_dict: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Split a ComfyUI CLIP object's state dict (``clip.get_sd()``) into its towers
    (``"clip_l"``, ``"clip_g"``), each keyed ``text_model.*`` / ``text_projection.weight``."""
    towers = {}
    for tower, prefix in TOWER_PREFIXES.items():
        weights = {k[len(prefix) :]: v for k, v in clip_state_dict.items() if k.startswith(prefix)}
        if weights:
            towers[tower] = weights
    return towers


def stretched_comfy_state_dict(
    state_dict: dict[str, torch.Tensor], length: int = LONG_LENGTH
) -> dict[str, torch.Tensor]:
    """A copy of a ComfyUI-layout text-encoder state dict whose position table is stretched to at
    least ``length`` rows (unchanged when it has them already), as
    :func:`~longclip_diffusers.length.stretching.stretch_plan` decides."""
    table = state_dict[TEXT_POSITION_KEY]
    if table.shape[0] >= length:
        return dict(state_dict)
    ratio, rows = stretch_plan(table.shape[0], length)
    stretched = stretch_position_table(table, ratio=ratio, length=rows)
    out = dict(state_dict)
    out[TEXT_POSITION_KEY] = stretched
    if POSITION_IDS_KEY in out:
        out[POSITION_IDS_KEY] = torch.arange(stretched.shape[0], dtype=out[POSITION_IDS_KEY].dtype).unsqueeze(0)
    return out


def comfy_long_clip_state_dicts(
    clip_state_dict: dict[str, torch.Tensor], long_clip: nn.Module, length: int = LONG_LENGTH
) -> list[dict[str, torch.Tensor]]:
    """The state dicts for ``comfy.sd.load_text_encoder_state_dicts``: ``long_clip`` in place of
    the clip_l tower of ``clip_state_dict`` and, when it has one (SDXL), its clip_g stretched.

    Checked before anything is built: the CLIP object has a clip_l tower as wide as
    ``long_clip``, and ``long_clip`` has ``length`` positions.
    """
    towers = comfy_towers(clip_state_dict)
    if "clip_l" not in towers:
        raise IncompatibleEncoderError(
            "this CLIP object has no CLIP-L tower (clip_l), which Long-CLIP-L replaces; connect "
            "the CLIP output of an SD1.x or SDXL checkpoint loader"
        )
    slot_width = towers["clip_l"][TOKEN_EMBEDDING_KEY].shape[1]
    config = text_config(long_clip)
    if config.hidden_size != slot_width:
        raise IncompatibleEncoderError(
            f"the Long-CLIP encoder is {config.hidden_size} wide but this CLIP's clip_l is "
            f"{slot_width} wide (the UNet reads that width); use Long-CLIP-L "
            "(768 wide, BeichenZhang/LongCLIP-L), not Long-CLIP-B"
        )
    if config.max_position_embeddings < length:
        raise IncompatibleEncoderError(
            f"the Long-CLIP encoder has {config.max_position_embeddings} positions, fewer than "
            f"{length}; load a Long-CLIP checkpoint (248 positions)"
        )
    state_dicts = [prefixed_state_dict(long_clip)]
    if "clip_g" in towers:
        state_dicts.append(stretched_comfy_state_dict(towers["clip_g"], length))
    return state_dicts
