"""The text half of a ``CLIPModel``, for training against cached image features.

With the vision tower frozen, its image features are a constant of the data: a feature cache
(:mod:`.feature_cache`) holds them, and the trainer needs only the text tower, its projection
and the logit scale. :class:`TextOnlyClip` holds exactly those and answers the few ``CLIPModel``
calls the trainer makes (``get_text_features``, ``logit_scale``, ``text_model``, ``config``), so
the rest of the recipe (stretching, frozen leading positions, the loss) runs unchanged. For
OpenCLIP ViT-bigG/14 this leaves out 1.8B of its 2.5B parameters.
"""

from __future__ import annotations

import math
import os
from typing import cast

import torch
from torch import nn
from transformers import CLIPModel, CLIPTextConfig, CLIPTextModelWithProjection
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ..errors import UnsupportedModelError


class TextOnlyClip(nn.Module):
    """A ``CLIPTextModelWithProjection`` (``self.encoder``) and a trainable ``logit_scale``."""

    def __init__(self, encoder: CLIPTextModelWithProjection, logit_scale: float = math.log(1 / 0.07)):
        super().__init__()
        self.encoder = encoder
        # one element, not 0-d: FSDP refuses 0-d parameters (see prepare_longclip_model)
        self.logit_scale = nn.Parameter(torch.tensor([float(logit_scale)]))

    @property
    def text_model(self) -> nn.Module:
        """The text transformer (what :func:`~longclip_diffusers.compat.text_transformer` reads)."""
        return self.encoder.text_model

    @property
    def config(self):
        """The text config (positions, width, projection)."""
        return self.encoder.config

    def get_text_features(self, input_ids: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        """Projected text features in ``pooler_output``, as ``CLIPModel.get_text_features``."""
        return BaseModelOutputWithPooling(pooler_output=self.encoder(input_ids=input_ids, **kwargs).text_embeds)

    def set_attn_implementation(self, implementation: str) -> None:
        self.encoder.set_attn_implementation(implementation)

    def activation_checkpointing_enable(self, **kwargs) -> None:
        self.encoder.activation_checkpointing_enable(**kwargs)


def load_text_only_clip(source: str | os.PathLike) -> TextOnlyClip:
    """The text tower, projection and logit scale of a CLIP model (a transformers ``CLIPModel``
    folder or hub id, or an OpenAI / open_clip checkpoint file), unstretched; the vision weights
    are never built into a model. The logit scale starts at CLIP's initial value: Long-CLIP's
    recipe resets it anyway (:func:`~.model_setup.prepare_longclip_model`)."""
    from ..io.loading import load_text_encoder

    encoder = load_text_encoder(source, with_projection=True, stretch=False)
    if not isinstance(encoder, CLIPTextModelWithProjection):
        raise UnsupportedModelError(
            f"{source} holds a {type(encoder).__name__}; the trainer needs a CLIP text tower with projection"
        )
    return TextOnlyClip(encoder)


def text_encoder_with_projection(model: TextOnlyClip | CLIPModel) -> CLIPTextModelWithProjection:
    """The text encoder with projection of a trained model: a :class:`TextOnlyClip`'s own, or
    one built from a ``CLIPModel``'s text tower and projection (sharing their tensors), for SDXL's
    ``text_encoder_2`` slot."""
    if isinstance(model, TextOnlyClip):
        return model.encoder
    text = cast(CLIPTextConfig, model.config.text_config)
    config = CLIPTextConfig(**{**text.to_dict(), "projection_dim": model.config.projection_dim})
    with torch.device("meta"):  # every module is replaced next: nothing to allocate or initialise
        encoder = CLIPTextModelWithProjection(config)
    encoder.text_model = model.text_model
    encoder.text_projection = model.text_projection
    return encoder.eval()
