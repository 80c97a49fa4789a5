"""The few places where transformers 4.x and 5.x CLIP classes differ, in one file.

transformers >= 5.6 made ``CLIPTextModel`` flat (``embeddings``, ``encoder``,
``final_layer_norm`` on the model itself) while ``CLIPTextModelWithProjection`` and ``CLIPModel``
still hold a ``text_model`` (docs/sdxl-recipes.md). Code that needs the text transformer asks
here instead of reaching for ``.text_model``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

from torch import nn

from .errors import UnsupportedModelError

if TYPE_CHECKING:
    from transformers import CLIPModel, CLIPVisionConfig

    from .tulip.full_model import TulipModel


class TextTower(Protocol):
    """The module that runs a CLIP (or TULIP) text tower: the parts of it this package reads."""

    @property
    def embeddings(self) -> nn.Module: ...

    @property
    def final_layer_norm(self) -> nn.Module: ...


def text_transformer(model: nn.Module) -> TextTower:
    """The module that owns ``embeddings``, ``encoder`` and ``final_layer_norm`` of a CLIP text
    tower, for ``CLIPTextModel``, ``CLIPTextModelWithProjection`` and ``CLIPModel`` alike."""
    inner = getattr(model, "text_model", model)
    if not hasattr(inner, "embeddings") or not hasattr(inner, "final_layer_norm"):
        raise UnsupportedModelError(
            f"{type(model).__name__} is not a CLIP text model: expected a CLIPTextModel, "
            "CLIPTextModelWithProjection or CLIPModel"
        )
    return cast(TextTower, inner)


def text_config(model: nn.Module):
    """The ``CLIPTextConfig`` of a text model or of a full ``CLIPModel``."""
    return getattr(model.config, "text_config", model.config)


def vision_config(model: CLIPModel | TulipModel) -> CLIPVisionConfig:
    """The ``CLIPVisionConfig`` of a full ``CLIPModel`` or ``TulipModel``. (transformers annotates
    the field with the dict or None a config may be built from; a built model holds the object.)"""
    return cast("CLIPVisionConfig", model.config.vision_config)


def vision_image_size(model: CLIPModel | TulipModel) -> int:
    """The side of the square images a full model's vision tower takes (224; 336 for the 336px
    CLIP models)."""
    size = vision_config(model).image_size
    if not isinstance(size, int):
        raise UnsupportedModelError(
            f"{type(model).__name__} has a vision tower for {size} images; CLIP's preprocessing here "
            "makes square ones: use a CLIP vision tower with a single image_size"
        )
    return size
