"""Setting the context length of a TULIP encoder, optionally with NTK-aware RoPE scaling.

Rotary positions need no table, so a TULIP encoder runs at any length as it is; what a length
changes is the tokenizer's padding and, on request, the RoPE base (NTK-aware scaling, TULIP paper
section 3.4, alpha = 8; docs/tulip.md). Scaling changes every rotation, short prompts'
included, so it is opt-in: the paper applies it before fine-tuning at the new length.
"""

from __future__ import annotations

from ..errors import InvalidArgumentError, UnsupportedModelError
from .modeling import TulipPreTrainedModel


def set_context_length(
    model: TulipPreTrainedModel, length: int, *, ntk_alpha: float | None = None
) -> TulipPreTrainedModel:
    """Set ``config.max_position_embeddings`` of a TULIP model to ``length``, in place.

    With ``ntk_alpha`` the RoPE base is NTK-scaled from the length the model was trained at
    (``config.trained_length``, whatever lengths were set since) to ``length``. A model whose
    config does not record its trained length (built by hand, or saved before it was recorded)
    takes the length it has at its first change. Returns the model for chaining.
    """
    if not isinstance(model, TulipPreTrainedModel):
        raise UnsupportedModelError(
            f"set_context_length takes a TulipTextModel or TulipTextModelWithProjection, got "
            f"{type(model).__name__}; stretch a CLIP encoder with stretch_text_encoder instead"
        )
    if length < 1:
        raise InvalidArgumentError(f"the context length must be positive; got {length}")
    if ntk_alpha is not None and ntk_alpha < 1:
        raise InvalidArgumentError(f"the NTK alpha must be at least 1; got {ntk_alpha}")
    for config in _configs(model):
        if config.trained_length is None:
            config.trained_length = config.max_position_embeddings
        if ntk_alpha is not None:
            config.ntk_original_length = config.trained_length
            config.ntk_alpha = ntk_alpha
        config.max_position_embeddings = length
    return model


def _configs(model: TulipPreTrainedModel) -> list:
    inner = getattr(model, "text_model", None)
    configs = [model.config]
    if inner is not None and inner.config is not model.config:
        configs.append(inner.config)
    return configs
