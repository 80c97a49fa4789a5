"""An independent forward pass of an OpenAI-layout CLIP / Long-CLIP state dict, in plain torch.

Written from the OpenAI CLIP / Long-CLIP model code as docs/checkpoint-format.md describes it, NOT
from the converter: it reads the checkpoint keys by their own names, so a converted transformers
model that matches it has the right key map, position tables, head split and pooling. It imports
nothing from ``longclip_diffusers``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Long-CLIP's masks: ``positional_embedding`` counts on rows 0-19, ``positional_embedding_res``
#: on rows 20 and after.
FIRST_TABLE_ROWS = 20
LAYER_NORM_EPS = 1e-5


def text_features(
    state_dict: dict[str, torch.Tensor], input_ids: torch.Tensor, num_heads: int, exact_gelu: bool = False
) -> dict[str, torch.Tensor]:
    """``last_hidden_state`` (after ``ln_final``), ``pooled`` (at the EOT token, found as the
    largest id) and ``text_embeds`` (``pooled @ text_projection``) for ``input_ids [B, N]``;
    ``exact_gelu`` for open_clip models trained with GELU (ViT-bigG/14) instead of QuickGELU."""
    sd = state_dict
    n = input_ids.shape[1]
    x = sd["token_embedding.weight"][input_ids]
    positions = sd["positional_embedding"][:n]
    if "positional_embedding_res" in sd:
        rows = torch.arange(n).unsqueeze(1)
        mask1 = (rows < FIRST_TABLE_ROWS).to(x.dtype)
        mask2 = 1.0 - mask1
        positions = positions * mask1 + sd["positional_embedding_res"][:n] * mask2
    x = x + positions
    causal = torch.full((n, n), float("-inf")).triu(1)
    x = _transformer(sd, "transformer.resblocks.", x, num_heads, causal, exact_gelu)
    x = _layer_norm(sd, "ln_final", x)
    pooled = x[torch.arange(x.shape[0]), input_ids.argmax(dim=-1)]
    return {"last_hidden_state": x, "pooled": pooled, "text_embeds": pooled @ sd["text_projection"]}


def image_features(
    state_dict: dict[str, torch.Tensor], pixel_values: torch.Tensor, num_heads: int, exact_gelu: bool = False
) -> dict[str, torch.Tensor]:
    """``pooled`` (``ln_post`` of the class token) and ``image_embeds`` (``pooled @ visual.proj``)."""
    sd = state_dict
    conv = sd["visual.conv1.weight"]
    x = F.conv2d(pixel_values, conv, stride=conv.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    cls = sd["visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + sd["visual.positional_embedding"]
    x = _layer_norm(sd, "visual.ln_pre", x)
    x = _transformer(sd, "visual.transformer.resblocks.", x, num_heads, None, exact_gelu)
    pooled = _layer_norm(sd, "visual.ln_post", x[:, 0])
    return {"pooled": pooled, "image_embeds": pooled @ sd["visual.proj"]}


def logits_per_image(
    state_dict: dict[str, torch.Tensor], input_ids: torch.Tensor, pixel_values: torch.Tensor, num_heads: int
) -> torch.Tensor:
    """``exp(logit_scale) * normalised image features @ normalised text features.T``."""
    image = image_features(state_dict, pixel_values, num_heads)["image_embeds"]
    text = text_features(state_dict, input_ids, num_heads)["text_embeds"]
    image = image / image.norm(dim=-1, keepdim=True)
    text = text / text.norm(dim=-1, keepdim=True)
    return state_dict["logit_scale"].exp() * image @ text.T


def _transformer(
    sd, prefix: str, x: torch.Tensor, num_heads: int, mask: torch.Tensor | None, exact_gelu: bool = False
) -> torch.Tensor:
    layer = 0
    while f"{prefix}{layer}.ln_1.weight" in sd:
        block = f"{prefix}{layer}."
        x = x + _attention(sd, block + "attn.", _layer_norm(sd, block + "ln_1", x), num_heads, mask)
        h = _linear(sd, block + "mlp.c_fc", _layer_norm(sd, block + "ln_2", x))
        h = F.gelu(h) if exact_gelu else h * torch.sigmoid(1.702 * h)  # GELU or QuickGELU
        x = x + _linear(sd, block + "mlp.c_proj", h)
        layer += 1
    return x


def _attention(sd, prefix: str, x: torch.Tensor, num_heads: int, mask: torch.Tensor | None) -> torch.Tensor:
    batch, n, width = x.shape
    packed = x @ sd[prefix + "in_proj_weight"].T + sd[prefix + "in_proj_bias"]
    q, k, v = packed.split(width, dim=-1)
    head = width // num_heads

    def heads(t):
        return t.reshape(batch, n, num_heads, head).transpose(1, 2)

    scores = heads(q) @ heads(k).transpose(-1, -2) / head**0.5
    if mask is not None:
        scores = scores + mask
    out = (scores.softmax(dim=-1) @ heads(v)).transpose(1, 2).reshape(batch, n, width)
    return _linear(sd, prefix + "out_proj", out)


def _linear(sd, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return x @ sd[prefix + ".weight"].T + sd[prefix + ".bias"]


def _layer_norm(sd, prefix: str, x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + LAYER_NORM_EPS) * sd[prefix + ".weight"] + sd[prefix + ".bias"]
