"""Configuration of the TULIP text encoder: CLIPTextConfig's fields, minus nothing, plus RoPE.

``max_position_embeddings`` is the context length the model is set up for (what its tokenizer
pads to), not a cap: rotary positions work at any length. ``trained_length`` is the length the
weights were trained at with the unscaled base ``rope_theta``; it is recorded once, when a
model is converted or distilled, and no length change moves it. When ``ntk_alpha`` and
``ntk_original_length`` are set, the RoPE base is NTK-scaled from ``ntk_original_length`` (the
trained length, L_old) to ``max_position_embeddings`` (L_new; docs/tulip.md).
"""

from __future__ import annotations

from transformers import CLIPTextConfig, CLIPVisionConfig, PretrainedConfig

from ..errors import InvalidArgumentError
from .rope import DEFAULT_ROPE_BASE, ntk_scaled_base


class TulipTextConfig(PretrainedConfig):
    """Configuration of :class:`~longclip_diffusers.TulipTextModel` and its ``WithProjection``
    variant. Defaults are TULIP ViT-L/14's text tower (docs/tulip.md): 768 wide,
    12 layers, 12 heads of 64, exact GELU as released, 248 tokens, RoPE base 10000."""

    model_type = "tulip_text"
    # lets a text model load from a full TulipModel folder, as CLIPTextConfig does from CLIP's
    base_config_key = "text_config"

    def __init__(
        self,
        vocab_size: int = 49408,
        hidden_size: int = 768,
        intermediate_size: int = 3072,
        projection_dim: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        max_position_embeddings: int = 248,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-5,
        attention_dropout: float = 0.0,
        initializer_range: float = 0.02,
        rope_theta: float = DEFAULT_ROPE_BASE,
        ntk_alpha: float | None = None,
        ntk_original_length: int | None = None,
        trained_length: int | None = None,
        pad_token_id: int | None = 1,
        bos_token_id: int | None = 49406,
        eos_token_id: int | None = 49407,
        **kwargs,
    ):
        if hidden_size % num_attention_heads:
            raise InvalidArgumentError(
                f"hidden_size ({hidden_size}) is not a multiple of num_attention_heads "
                f"({num_attention_heads}); pick a head count that divides the width"
            )
        if (hidden_size // num_attention_heads) % 2:
            raise InvalidArgumentError(
                f"RoPE needs an even head size; hidden_size {hidden_size} / "
                f"{num_attention_heads} heads gives {hidden_size // num_attention_heads}"
            )
        if (ntk_alpha is None) != (ntk_original_length is None):
            raise InvalidArgumentError(
                "ntk_alpha and ntk_original_length go together: set both to NTK-scale the RoPE base, or neither"
            )
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.projection_dim = projection_dim
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range
        self.rope_theta = rope_theta
        self.ntk_alpha = ntk_alpha
        self.ntk_original_length = ntk_original_length
        self.trained_length = trained_length
        super().__init__(**kwargs)
        # set after the base __init__, which in transformers 5 takes the special ids only as
        # loose keyword arguments (its signature does not list them)
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def rope_base(self) -> float:
        """The RoPE base the model runs with: ``rope_theta``, NTK-scaled when the model is set to
        a context longer than the one it was trained at."""
        if (
            self.ntk_alpha is None
            or self.ntk_original_length is None
            or self.max_position_embeddings <= self.ntk_original_length
        ):
            return float(self.rope_theta)
        return ntk_scaled_base(
            self.rope_theta,
            self.ntk_alpha,
            self.max_position_embeddings,
            self.ntk_original_length,
            self.head_dim,
        )


def tulip_text_config_from_clip(clip_config: CLIPTextConfig, **overrides) -> TulipTextConfig:
    """The TULIP config with a CLIP text config's sizes and special ids (what a student distilled
    from that CLIP, or a converted TULIP tower, has); ``overrides`` set the TULIP-only fields and
    anything that differs (e.g. ``hidden_act="gelu"`` as released, ``max_position_embeddings``)."""
    shared = {
        name: getattr(clip_config, name)
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "projection_dim",
            "num_hidden_layers",
            "num_attention_heads",
            "hidden_act",
            "layer_norm_eps",
            "attention_dropout",
            "initializer_range",
            "pad_token_id",
            "bos_token_id",
            "eos_token_id",
        )
    }
    return TulipTextConfig(**{**shared, **overrides})


class TulipConfig(PretrainedConfig):
    """A full TULIP model (:class:`~longclip_diffusers.tulip.TulipModel`): the RoPE text tower and
    CLIP's vision tower, as ``CLIPConfig`` holds them (docs/tulip.md)."""

    model_type = "tulip"
    sub_configs = {"text_config": TulipTextConfig, "vision_config": CLIPVisionConfig}

    def __init__(
        self,
        text_config: dict | TulipTextConfig | None = None,
        vision_config: dict | CLIPVisionConfig | None = None,
        projection_dim: int = 768,
        logit_scale_init_value: float = 2.6592,
        **kwargs,
    ):
        if not isinstance(text_config, TulipTextConfig):
            text_config = TulipTextConfig(**(text_config or {}))
        if not isinstance(vision_config, CLIPVisionConfig):
            vision_config = CLIPVisionConfig(**(vision_config or {}))
        self.text_config = text_config
        self.vision_config = vision_config
        self.projection_dim = projection_dim
        self.logit_scale_init_value = logit_scale_init_value
        super().__init__(**kwargs)
