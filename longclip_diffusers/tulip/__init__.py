"""TULIP: CLIP text encoders with rotary positions (TULIP paper; docs/tulip.md).

Importing this package (``import longclip_diffusers`` does) registers the models with
transformers' Auto classes, so ``AutoConfig`` / ``AutoModel`` load a saved TULIP encoder.
"""

from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding

from .configuration import TulipConfig, TulipTextConfig
from .context import set_context_length
from .full_model import TulipModel
from .modeling import TulipPreTrainedModel, TulipTextModel, TulipTextModelWithProjection
from .rope import DEFAULT_NTK_ALPHA, DEFAULT_ROPE_BASE, apply_rotary, ntk_scaled_base, rotary_tables

AutoConfig.register(TulipTextConfig.model_type, TulipTextConfig, exist_ok=True)
AutoModel.register(TulipTextConfig, TulipTextModel, exist_ok=True)
# WithProjection is reachable through the text-encoding Auto class, the one diffusers-style
# loaders use for a pipeline's text encoder.
AutoModelForTextEncoding.register(TulipTextConfig, TulipTextModelWithProjection, exist_ok=True)
AutoConfig.register(TulipConfig.model_type, TulipConfig, exist_ok=True)
AutoModel.register(TulipConfig, TulipModel, exist_ok=True)

__all__ = [
    "DEFAULT_NTK_ALPHA",
    "DEFAULT_ROPE_BASE",
    "TulipConfig",
    "TulipModel",
    "TulipPreTrainedModel",
    "TulipTextConfig",
    "TulipTextModel",
    "TulipTextModelWithProjection",
    "apply_rotary",
    "ntk_scaled_base",
    "rotary_tables",
    "set_context_length",
]
