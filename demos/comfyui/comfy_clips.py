"""The ComfyUI calls the nodes share: build a ComfyUI CLIP around Long-CLIP, move a CLIP's patches
onto it, and encode a prompt the way ComfyUI's own text-encode nodes do.

Everything that touches ComfyUI's modules is here; what can be decided without them is in
:mod:`longclip_diffusers.comfyui.clip_state_dicts`. ComfyUI's text encoders do the encoding, so
its prompt weighting ``(word:1.2)``, ``embedding:name`` textual inversions, chunking of long
prompts, CLIP Set Last Layer and LoRA patches all apply (docs/comfyui-nodes.md).
"""

from __future__ import annotations

import logging
import os
import weakref

from torch import nn

from longclip_diffusers.comfyui.clip_state_dicts import (
    comfy_long_clip_state_dicts,
    patches_that_cannot_move,
    rebuilt_shapes,
)
from longclip_diffusers.errors import IncompatibleEncoderError
from longclip_diffusers.io.export import prefixed_state_dict

LOGGER = logging.getLogger("longclip_diffusers.comfyui")

#: A ``clip_layer`` index deeper than any tower: ComfyUI then reads each tower's last layer after
#: its final LayerNorm (``SDClipModel.set_clip_options``), the released Long-CLIP SDXL recipe.
FINAL_NORMALIZED_LAYER = -1000

#: Patcher state other than weight patches, which a rebuilt CLIP cannot take over: attribute of
#: ``clip.patcher`` -> what a user connected to make it.
_UNMOVABLE_PATCHER_STATE = {
    "hook_patches": "scheduled or hooked LoRA (Set CLIP Hooks)",
    "forced_hooks": "CLIP hooks (Set CLIP Hooks)",
    "object_patches": "object patches",
    "weight_wrapper_patches": "weight wrappers",
    "wrappers": "wrappers",
    "callbacks": "callbacks",
    "injections": "injections",
    "additional_models": "additional models",
    "attachments": "attachments",
}

_CLIPS: dict = {}


def comfy_sd():
    """ComfyUI's ``comfy.sd``, or a RuntimeError saying where the nodes run."""
    try:
        import comfy.sd
    except ImportError as exc:
        raise RuntimeError("the Long-CLIP nodes need ComfyUI's modules (comfy.sd): run them inside ComfyUI") from exc
    return comfy.sd


def embedding_directories() -> list[str]:
    """ComfyUI's ``models/embeddings`` folders, where ``embedding:name`` is looked up."""
    import folder_paths

    return folder_paths.get_folder_paths("embeddings")


def comfy_tokenizer_dir() -> str | None:
    """The CLIP tokenizer ComfyUI ships (``comfy/sd1_tokenizer``), or None outside ComfyUI; with
    it no tokenizer is fetched from the hub."""
    try:
        import comfy.sd1_clip
    except ImportError:
        return None
    return os.path.join(os.path.dirname(os.path.realpath(comfy.sd1_clip.__file__)), "sd1_tokenizer")


def clip_type_name(clip) -> str:
    """The ``comfy.sd.CLIPType`` a CLIP object is rebuilt with: ``"STABLE_DIFFUSION"`` (SD1.x,
    SDXL), ``"SD3"`` or ``"FLUX"``; an IncompatibleEncoderError for a CLIP without ``clip_l``."""
    import comfy.sd1_clip
    import comfy.sdxl_clip
    from comfy.text_encoders import flux, sd3_clip

    model = clip.cond_stage_model
    if isinstance(model, flux.FluxClipModel):
        return "FLUX"
    if isinstance(model, sd3_clip.SD3ClipModel) and getattr(model, "clip_l", None) is not None:
        return "SD3"
    if isinstance(model, comfy.sdxl_clip.SDXLClipModel):
        return "STABLE_DIFFUSION"
    if isinstance(model, comfy.sd1_clip.SD1ClipModel) and getattr(model, "clip", None) == "clip_l":
        return "STABLE_DIFFUSION"
    raise IncompatibleEncoderError(
        f"Long-CLIP into CLIP takes the CLIP of SD1.x, SDXL, SD3 / SD3.5 or Flux.1 (one with a "
        f"clip_l tower); this one is a {type(model).__name__}. Connect the CLIP of such a checkpoint "
        "or text-encoder loader"
    )


def _refuse_unmovable_state(clip) -> None:
    found = [what for name, what in _UNMOVABLE_PATCHER_STATE.items() if _non_empty(getattr(clip.patcher, name, None))]
    if getattr(clip, "apply_hooks_to_conds", None):
        found.append("hooks applied to conditioning")
    if found:
        raise IncompatibleEncoderError(
            f"this CLIP carries {', '.join(dict.fromkeys(found))}, which Long-CLIP into CLIP cannot move "
            "onto the rebuilt CLIP; connect those nodes after Long-CLIP into CLIP instead"
        )


def _non_empty(value) -> bool:
    if isinstance(value, dict):
        return any(_non_empty(v) for v in value.values())
    if isinstance(value, (list, tuple, set)):
        return len(value) > 0
    return value is not None


def rebuild_with_long_clip(clip, long_clip: nn.Module):
    """A new ComfyUI CLIP of ``clip``'s family with ``long_clip`` as ``clip_l`` (``clip_g``
    stretched, T5 untouched) and ``clip``'s weight patches (LoRA) moved onto it.

    The weights come from ``clip.get_key_patches()``: the originals even while another clone has
    them patched in place. A patch that does not fit the rebuilt towers (the new position
    tables), and hooks or other patcher state, are refused with an error, never dropped.
    ``clip`` itself is left as it was.
    """
    sd = comfy_sd()
    clip_type = clip_type_name(clip)
    _refuse_unmovable_state(clip)
    key_patches = clip.get_key_patches()
    originals = {key: entries[0][0] for key, entries in key_patches.items()}
    patches = {key: entries[1:] for key, entries in key_patches.items() if len(entries) > 1}
    state_dicts = comfy_long_clip_state_dicts(originals, long_clip)
    refused = patches_that_cannot_move({k: tuple(originals[k].shape) for k in patches}, rebuilt_shapes(state_dicts))
    if refused:
        listing = "; ".join(f"{key} ({why})" for key, why in list(refused.items())[:3])
        raise IncompatibleEncoderError(
            f"this CLIP carries patches (a LoRA?) on weights that Long-CLIP into CLIP replaces: {listing}. "
            "Put the LoRA loader after Long-CLIP into CLIP"
        )
    options = {}
    for name in ("load_device", "offload_device"):
        if hasattr(clip.patcher, name):
            options[name] = getattr(clip.patcher, name)
    rebuilt = sd.load_text_encoder_state_dicts(
        state_dicts=state_dicts,
        embedding_directory=embedding_directories(),
        clip_type=sd.CLIPType[clip_type],
        model_options=options,
    )
    for key, entries in patches.items():
        for strength_patch, value, strength_model, offset, function in entries:
            patch_key = key if offset is None and function is None else (key, offset, function)
            if not rebuilt.add_patches({patch_key: value}, strength_patch, strength_model):
                raise IncompatibleEncoderError(
                    f"the rebuilt CLIP has no weight {key} for a patch of this CLIP; put the LoRA "
                    "loader after Long-CLIP into CLIP"
                )
    if clip.layer_idx is not None:
        rebuilt.clip_layer(clip.layer_idx)
    for name, value in getattr(clip, "tokenizer_options", {}).items():
        rebuilt.set_tokenizer_option(name, value)
    return rebuilt


def clip_of_encoders(models: list[nn.Module]):
    """A ComfyUI CLIP (SD1.x's for one encoder, SDXL's for ``clip_l`` + ``clip_g``) made of
    transformers text encoders, kept while they live so each prompt does not rebuild it."""
    directories = tuple(embedding_directories())
    key = (tuple(id(model) for model in models), directories)
    clip = _CLIPS.get(key)
    if clip is None:
        sd = comfy_sd()
        clip = sd.load_text_encoder_state_dicts(
            state_dicts=[prefixed_state_dict(model) for model in models],
            embedding_directory=list(directories),
            clip_type=sd.CLIPType.STABLE_DIFFUSION,
        )
        _CLIPS[key] = clip
        for model in models:
            weakref.finalize(model, _CLIPS.pop, key, None)
    return clip


def tokens_with_warning(tokens: dict) -> dict:
    """``tokens`` as they are, after a console warning when ComfyUI cut the prompt into chunks."""
    chunks = max(len(tokens[name]) for name in ("l", "g") if name in tokens)
    if chunks > 1:
        length = len(tokens["l" if "l" in tokens else "g"][0])
        LOGGER.warning(
            "Long-CLIP: the prompt is longer than the %d tokens one %d-token encoder reads; ComfyUI "
            "encodes it in %d chunks of %d tokens, each on its own (no attention across chunks, the "
            "pooled vector from the first)",
            length - 2,
            length,
            chunks,
            length,
        )
    return tokens


def encode(clip, text: str, add_dict: dict | None = None) -> list:
    """CONDITIONING for ``text`` as ComfyUI's CLIP Text Encode makes it."""
    return clip.encode_from_tokens_scheduled(tokens_with_warning(clip.tokenize(text)), add_dict=add_dict or {})


def encode_sdxl(clip, text_g: str, text_l: str, add_dict: dict) -> list:
    """CONDITIONING for SDXL's two prompts as ComfyUI's CLIPTextEncodeSDXL makes it: the shorter
    prompt's chunks padded with empty ones so both towers give as many."""
    tokens = clip.tokenize(text_g)
    tokens["l"] = clip.tokenize(text_l)["l"]
    if len(tokens["l"]) != len(tokens["g"]):
        empty = clip.tokenize("")
        while len(tokens["l"]) < len(tokens["g"]):
            tokens["l"] += empty["l"]
        while len(tokens["l"]) > len(tokens["g"]):
            tokens["g"] += empty["g"]
    return clip.encode_from_tokens_scheduled(tokens_with_warning(tokens), add_dict=add_dict)
