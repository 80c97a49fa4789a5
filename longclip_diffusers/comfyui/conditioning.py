"""Text conditioning in ComfyUI's CONDITIONING format, from 248-token transformers encoders.

ComfyUI passes text conditioning as a list of ``[cond, extras]`` pairs: ``cond`` is the UNet's
cross-attention input ``[B, L, C]`` and ``extras`` a dict holding ``pooled_output`` ``[B, P]``
and, for SDXL, the size fields ComfyUI's ``CLIPTextEncodeSDXL`` sets (docs/comfyui.md).
The layers read are those of :mod:`longclip_diffusers.drop_in.layer_recipes`, as in a patched diffusers
pipeline: SD1.x the last layer after the final LayerNorm; SDXL both encoders' penultimate layer
(``"standard"``) or the last normalised one (``"longclip"``), concatenated on the feature axis,
pooled from the projected second encoder. Each prompt is encoded in one piece of up to 248 tokens.

Inside ComfyUI the nodes encode Long-CLIP through ComfyUI's own text encoders instead (weighting,
textual inversions, chunking; ``demos/comfyui/comfy_clips.py``), which give the same tensors for
an unweighted prompt that fits; these functions serve outside ComfyUI and TULIP encoders, whose
rotary positions ComfyUI's CLIP towers cannot hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..compat import text_config
from ..constants import DEFAULT_TOKENIZER
from ..drop_in.layer_recipes import normalized_layer, sdxl_layer
from ..errors import IncompatibleEncoderError
from ..io.loading import load_text_encoder, load_tokenizer
from ..length.fit_length import fit_encoder_length
from ..length.tokens import LONG_LENGTH, tokenizer_at

#: ComfyUI's CONDITIONING: ``[[cond [B, L, C], {"pooled_output": [B, P], ...}], ...]``.
Conditioning = list


@dataclass(frozen=True)
class EncoderWithTokenizer:
    """A text encoder and the tokenizer that feeds it (padded to ``tokenizer.model_max_length``)."""

    model: nn.Module
    tokenizer: PreTrainedTokenizerBase

    @property
    def positions(self) -> int:
        """Tokens the model reads (its ``max_position_embeddings``)."""
        return text_config(self.model).max_position_embeddings

    @property
    def width(self) -> int:
        """Width of the features it hands the UNet (its ``hidden_size``)."""
        return text_config(self.model).hidden_size


def load_encoder_with_tokenizer(
    source: str | os.PathLike,
    *,
    with_projection: bool = False,
    length: int = LONG_LENGTH,
    torch_dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    tower: str | None = None,
    tokenizer_fallback: str | os.PathLike = DEFAULT_TOKENIZER,
) -> EncoderWithTokenizer:
    """Load an encoder and its tokenizer (:func:`~longclip_diffusers.load_text_encoder`,
    :func:`~longclip_diffusers.load_tokenizer`) reading ``length`` tokens.

    An absolute-position encoder with fewer positions (SDXL's OpenCLIP bigG at 77) is stretched
    with knowledge-preserved stretching first, no training (docs/stretching.md).
    ``with_projection`` loads the projection SDXL pools from (the ``clip_g`` slot); ``tower``
    picks the encoder of a file or pipeline folder holding several; ``tokenizer_fallback`` is the
    tokenizer of sources without one (a folder, e.g. ComfyUI's ``comfy/sd1_tokenizer``, needs no
    hub).
    """
    model = load_text_encoder(
        source, with_projection=with_projection, torch_dtype=torch_dtype, device=device, tower=tower
    )
    return fit_encoder_with_tokenizer(model, load_tokenizer(source, fallback=tokenizer_fallback, tower=tower), length)


def fit_encoder_with_tokenizer(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, length: int = LONG_LENGTH
) -> EncoderWithTokenizer:
    """``model`` made to read ``length`` tokens (:func:`~longclip_diffusers.length.fit_length.fit_encoder_length`:
    a stretched twin when its table is shorter; ``model`` itself is left as it was) with a copy of
    ``tokenizer`` reading ``length`` tokens."""
    return EncoderWithTokenizer(fit_encoder_length(model, length), tokenizer_at(tokenizer, length))


@torch.no_grad()
def encode_sd15(
    encoder: EncoderWithTokenizer, text: str, clip_skip: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cond [1, L, W], pooled [1, P])`` as SD1.x reads them: layer ``-(clip_skip + 1)``
    through the final LayerNorm (the last layer by default)."""
    output = _run(encoder, text)
    return normalized_layer(encoder.model, output.hidden_states, clip_skip), _pooled(output)


@torch.no_grad()
def encode_sdxl(
    encoder_l: EncoderWithTokenizer,
    encoder_g: EncoderWithTokenizer,
    text_l: str,
    text_g: str,
    recipe: str = "standard",
    clip_skip: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cond [1, L, W_l + W_g], pooled [1, P])`` as SDXL reads them under ``recipe``; the
    pooled vector is ``encoder_g``'s projection."""
    if getattr(encoder_g.model, "text_projection", None) is None:
        raise IncompatibleEncoderError(
            "the clip_g encoder has no text projection, which SDXL pools from; load SDXL's second "
            "text encoder with its projection (the loader's clip_g slot, with_projection=True)"
        )
    if encoder_l.tokenizer.model_max_length != encoder_g.tokenizer.model_max_length:
        raise IncompatibleEncoderError(
            f"clip_l reads {encoder_l.tokenizer.model_max_length} tokens and clip_g "
            f"{encoder_g.tokenizer.model_max_length}; SDXL concatenates them token by token, so "
            "both must read the same length (load both at 248: clip_g gets stretched)"
        )
    output_l, output_g = _run(encoder_l, text_l), _run(encoder_g, text_g)
    cond = torch.cat(
        [
            sdxl_layer(recipe, encoder_l.model, output_l.hidden_states, clip_skip),
            sdxl_layer(recipe, encoder_g.model, output_g.hidden_states, clip_skip),
        ],
        dim=-1,
    )
    return cond, _pooled(output_g)


def sd15_conditioning(encoder: EncoderWithTokenizer, text: str, clip_skip: int | None = None) -> Conditioning:
    """ComfyUI CONDITIONING for SD1.x: ``[[cond [1, L, W], {"pooled_output": [1, P]}]]``."""
    cond, pooled = encode_sd15(encoder, text, clip_skip)
    return [[_comfy_tensor(cond), {"pooled_output": _comfy_tensor(pooled)}]]


def sdxl_conditioning(
    encoder_l: EncoderWithTokenizer,
    encoder_g: EncoderWithTokenizer,
    text_l: str,
    text_g: str,
    *,
    width: int = 1024,
    height: int = 1024,
    crop_w: int = 0,
    crop_h: int = 0,
    target_width: int = 1024,
    target_height: int = 1024,
    recipe: str = "standard",
    clip_skip: int | None = None,
) -> Conditioning:
    """ComfyUI CONDITIONING for SDXL with the fields ``CLIPTextEncodeSDXL`` sets:
    ``[[cond [1, L, W_l + W_g], {"pooled_output", "width", "height", "crop_w", "crop_h",
    "target_width", "target_height"}]]`` (2048 wide for CLIP-L + bigG)."""
    cond, pooled = encode_sdxl(encoder_l, encoder_g, text_l, text_g, recipe, clip_skip)
    extras = {
        "pooled_output": _comfy_tensor(pooled),
        "width": width,
        "height": height,
        "crop_w": crop_w,
        "crop_h": crop_h,
        "target_width": target_width,
        "target_height": target_height,
    }
    return [[_comfy_tensor(cond), extras]]


def _run(encoder: EncoderWithTokenizer, text: str):
    input_ids = encoder.tokenizer(
        [text],
        padding="max_length",
        max_length=encoder.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    device = next(encoder.model.parameters()).device
    return encoder.model(input_ids.to(device), output_hidden_states=True)


def _pooled(output) -> torch.Tensor:
    embeds = getattr(output, "text_embeds", None)
    return embeds if embeds is not None else output.pooler_output


def _comfy_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """ComfyUI's text encoders hand over float32 tensors on the CPU (its intermediate device)."""
    return tensor.detach().to("cpu", torch.float32)
