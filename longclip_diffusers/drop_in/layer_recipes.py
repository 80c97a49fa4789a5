"""Which hidden layer of a CLIP text encoder becomes the UNet's text conditioning.

Two recipes (docs/sdxl-recipes.md):

* ``"standard"``: what diffusers does and what each UNet was trained on. SD1.x reads the last
  layer after the final LayerNorm (``clip_skip=k``: layer ``-(k+1)`` then the final LayerNorm);
  SDXL reads the penultimate layer of both encoders without the final LayerNorm
  (``clip_skip=k``: layer ``-(k+2)``).
* ``"longclip"``: the released Long-CLIP SDXL code: the last layer after the final LayerNorm for
  both encoders (``clip_skip=k``: layer ``-(k+1)`` then the final LayerNorm). For SD1.x it is the
  same as the standard recipe.

The pooled SDXL vector is the projected ``text_embeds`` of ``text_encoder_2`` in both recipes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..compat import text_transformer
from ..constants import RECIPES
from ..errors import InvalidArgumentError


def check_recipe(recipe: str) -> str:
    """Return ``recipe`` if it is one of :data:`RECIPES`, else raise :class:`InvalidArgumentError` naming them."""
    if recipe not in RECIPES:
        raise InvalidArgumentError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return recipe


def normalized_layer(
    encoder: nn.Module, hidden_states: Sequence[torch.Tensor], clip_skip: int | None = None
) -> torch.Tensor:
    """Layer ``-(clip_skip + 1)`` through the encoder's final LayerNorm (``clip_skip`` None or 0:
    the ``last_hidden_state``). Works on transformers 5's flat ``CLIPTextModel`` too."""
    return text_transformer(encoder).final_layer_norm(hidden_states[-(1 + (clip_skip or 0))])


def penultimate_layer(hidden_states: Sequence[torch.Tensor], clip_skip: int | None = None) -> torch.Tensor:
    """SDXL's standard read-out: layer ``-(clip_skip + 2)``, no final LayerNorm."""
    return hidden_states[-(2 + (clip_skip or 0))]


def sdxl_layer(
    recipe: str, encoder: nn.Module, hidden_states: Sequence[torch.Tensor], clip_skip: int | None = None
) -> torch.Tensor:
    """The SDXL conditioning of one encoder under ``recipe``."""
    if check_recipe(recipe) == "longclip":
        return normalized_layer(encoder, hidden_states, clip_skip)
    return penultimate_layer(hidden_states, clip_skip)
