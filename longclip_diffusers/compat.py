"""The few places where transformers 4.x and 5.x CLIP classes differ, in one file.

transformers >= 5.6 made ``CLIPTextModel`` flat (``embeddings``, ``encoder``,
``final_layer_norm`` on the model itself) while ``CLIPTextModelWithProjection`` and ``CLIPModel``
still hold a ``text_model`` (docs/sdxl-recipes.md). Code that needs the text transformer asks
here instead of reaching for ``.text_model``.
"""

from __future__ import annotations

from torch import nn


def text_transformer(model: nn.Module) -> nn.Module:
    """The module that owns ``embeddings``, ``encoder`` and ``final_layer_norm`` of a CLIP text
    tower, for ``CLIPTextModel``, ``CLIPTextModelWithProjection`` and ``CLIPModel`` alike."""
    inner = getattr(model, "text_model", model)
    if not hasattr(inner, "embeddings") or not hasattr(inner, "final_layer_norm"):
        raise TypeError(
            f"{type(model).__name__} is not a CLIP text model: expected a CLIPTextModel, "
            "CLIPTextModelWithProjection or CLIPModel"
        )
    return inner


def text_config(model: nn.Module):
    """The ``CLIPTextConfig`` of a text model or of a full ``CLIPModel``."""
    return getattr(model.config, "text_config", model.config)
