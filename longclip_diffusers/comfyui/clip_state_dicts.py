"""The state dicts from which ComfyUI builds a 248-token CLIP object, and the checks before it.

ComfyUI sizes a text encoder by its weights: a CLIP-L or bigG tower whose
``text_model.embeddings.position_embedding.weight`` has 248 rows becomes a 248-token tower with a
248-token tokenizer (docs/comfyui.md). So Long-CLIP enters ComfyUI as state dicts in its layout
(``text_model.*`` keys, ``text_projection.weight``, the layout of
:func:`~longclip_diffusers.io.export.prefixed_state_dict`) handed to
``comfy.sd.load_text_encoder_state_dicts``: the Long-CLIP-L encoder in place of a CLIP's
``clip_l`` and, where the CLIP has one (SDXL, SD3), its ``clip_g`` with the position table
stretched by knowledge-preserved stretching, so that both towers read 248 tokens; a T5 (Flux.1,
SD3) goes through untouched.

A ComfyUI CLIP may carry patches (a LoRA loaded before the node): :func:`patches_that_cannot_move`
names those that do not fit the rebuilt towers (the stretched position table is new), so the node
keeps the others and refuses the rest instead of losing them (docs/comfyui-nodes.md).

Nothing here imports ComfyUI; the nodes in ``demos/comfyui`` make the calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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
#: Where a ComfyUI CLIP object's state dict (``clip.get_sd()``, the patcher's keys) keeps each
#: tower's weights; a tower's own state dict is what follows the prefix.
TOWER_PREFIXES = {"clip_l": "clip_l.transformer.", "clip_g": "clip_g.transformer.", "t5xxl": "t5xxl.transformer."}
#: The widths the UNet / DiT reads from each slot: OpenAI CLIP-L and OpenCLIP bigG.
SLOT_WIDTHS = {"clip_l": 768, "clip_g": 1280}
#: Known text encoders by width, for messages that say what was connected.
KNOWN_WIDTHS = {
    512: "Long-CLIP-B / CLIP-B (the Long-CLIP-B release)",
    768: "Long-CLIP-L / CLIP-L",
    1024: "OpenCLIP ViT-H (SD2's encoder)",
    1280: "OpenCLIP bigG (SDXL's / SD3's clip_g)",
}


def comfy_towers(clip_state_dict: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Split a ComfyUI CLIP object's state dict into its towers (``"clip_l"``, ``"clip_g"``,
    ``"t5xxl"``), each keyed as ComfyUI's loader takes it (``text_model.*``; T5's own keys)."""
    towers = {}
    for tower, prefix in TOWER_PREFIXES.items():
        weights = {k[len(prefix) :]: v for k, v in clip_state_dict.items() if k.startswith(prefix)}
        if weights:
            towers[tower] = weights
    return towers


def stretched_comfy_state_dict(
    state_dict: Mapping[str, torch.Tensor], length: int = LONG_LENGTH
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


def check_slot_width(slot: str, width: int, expected: int, what: str = "the text encoder") -> None:
    """Raise :class:`IncompatibleEncoderError` unless ``width`` is the ``expected`` width of
    ``slot``; the message names what a ``width``-wide encoder is and which encoder the slot takes."""
    if width == expected:
        return
    known = KNOWN_WIDTHS.get(width)
    connected = f"{what} is {width} wide" + (f", the width of {known}" if known else "")
    if slot == "clip_l" and width == SLOT_WIDTHS["clip_g"]:
        fix = (
            "this is a clip_g encoder: Long-CLIP replaces clip_l; load Long-CLIP-L (768 wide, "
            "BeichenZhang/LongCLIP-L) into the clip_l slot, and for SDXL / SD3 put bigG in the "
            "clip_g slot (or let Long-CLIP into CLIP stretch the CLIP's own)"
        )
    elif slot == "clip_l":
        fix = "use Long-CLIP-L (768 wide, BeichenZhang/LongCLIP-L)" + (", not Long-CLIP-B" if width == 512 else "")
    else:
        fix = (
            "load SDXL's second text encoder (OpenCLIP bigG, 1280 wide: a ComfyUI clip_g file, an SDXL "
            "checkpoint or a text_encoder_2 folder) in the loader's clip_g slot; Long-CLIP-L goes in clip_l"
        )
    raise IncompatibleEncoderError(f"{connected}, but the {slot} slot reads {expected}; {fix}")


def check_long_clip(long_clip: nn.Module, slot_width: int, length: int = LONG_LENGTH) -> None:
    """Check that ``long_clip`` fills a ``clip_l`` slot ``slot_width`` wide and reads ``length``
    tokens."""
    config = text_config(long_clip)
    check_slot_width("clip_l", config.hidden_size, slot_width, "the Long-CLIP encoder")
    if config.max_position_embeddings < length:
        raise IncompatibleEncoderError(
            f"the Long-CLIP encoder has {config.max_position_embeddings} positions, fewer than "
            f"{length}; load a Long-CLIP checkpoint (248 positions)"
        )


def comfy_long_clip_state_dicts(
    clip_state_dict: Mapping[str, torch.Tensor], long_clip: nn.Module, length: int = LONG_LENGTH
) -> list[dict[str, torch.Tensor]]:
    """The state dicts for ``comfy.sd.load_text_encoder_state_dicts``: ``long_clip`` in place of
    the ``clip_l`` tower of ``clip_state_dict``, its ``clip_g`` (SDXL, SD3) stretched, its
    ``t5xxl`` (Flux.1, SD3) as it is.

    Checked before anything is built: the CLIP object has a ``clip_l`` tower as wide as
    ``long_clip``, and ``long_clip`` has ``length`` positions.
    """
    towers = comfy_towers(clip_state_dict)
    if "clip_l" not in towers:
        raise IncompatibleEncoderError(
            "this CLIP object has no CLIP-L tower (clip_l), which Long-CLIP-L replaces (an SDXL "
            "refiner's CLIP has clip_g only); connect the CLIP of an SD1.x, SDXL, SD3 or Flux.1 "
            "checkpoint or text-encoder loader"
        )
    check_long_clip(long_clip, towers["clip_l"][TOKEN_EMBEDDING_KEY].shape[1], length)
    state_dicts = [prefixed_state_dict(long_clip)]
    if "clip_g" in towers:
        state_dicts.append(stretched_comfy_state_dict(towers["clip_g"], length))
    if "t5xxl" in towers:
        state_dicts.append(towers["t5xxl"])
    return state_dicts


def rebuilt_shapes(state_dicts: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, tuple[int, ...]]:
    """The shapes the rebuilt CLIP's towers get, keyed as in a ComfyUI CLIP's state dict."""
    shapes = {}
    for state_dict in state_dicts:
        tower = tower_of_state_dict(state_dict)
        for key, value in state_dict.items():
            shapes[TOWER_PREFIXES[tower] + key] = tuple(value.shape)
    return shapes


def tower_of_state_dict(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Which tower a state dict of :func:`comfy_long_clip_state_dicts` is, by the rule ComfyUI's
    SDXL / SD3 CLIPs route state dicts with (a layer 30 is bigG; no token embedding is T5)."""
    if TOKEN_EMBEDDING_KEY not in state_dict:
        return "t5xxl"
    return "clip_g" if "text_model.encoder.layers.30.mlp.fc1.weight" in state_dict else "clip_l"


def patches_that_cannot_move(
    patched: Mapping[str, tuple[int, ...]], rebuilt: Mapping[str, tuple[int, ...]]
) -> dict[str, str]:
    """``{key: why}`` for the patched weights (key -> shape in the old CLIP) that the rebuilt
    CLIP (:func:`rebuilt_shapes`) cannot carry: a tower weight it lacks, or one whose shape
    changed (the stretched or replaced position tables). Weights outside the towers (e.g.
    ``clip_l.logit_scale``) stay as they were."""
    refused = {}
    for key, shape in patched.items():
        in_tower = any(key.startswith(prefix) for prefix in TOWER_PREFIXES.values())
        if key in rebuilt and tuple(rebuilt[key]) != tuple(shape):
            refused[key] = f"{list(shape)} becomes {list(rebuilt[key])}"
        elif in_tower and key not in rebuilt:
            refused[key] = "not in the rebuilt CLIP"
    return refused
