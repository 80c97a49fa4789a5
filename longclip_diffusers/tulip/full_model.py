"""The full TULIP model: the RoPE text tower beside CLIP's vision tower, as ``CLIPModel``.

It has ``CLIPModel``'s attributes (``text_model``, ``vision_model``, ``text_projection``,
``visual_projection``, ``logit_scale``) and borrows its methods, so retrieval evaluation,
zero-shot classification and the contrastive trainer (TULIP's stage 2) use it as they use
``CLIPModel`` (docs/tulip.md).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPModel, CLIPVisionModel, PreTrainedModel

from .configuration import TulipConfig
from .modeling import TulipTextModel


class TulipModel(PreTrainedModel):
    """TULIP text + CLIP vision with ``get_text_features``, ``get_image_features`` and
    ``forward`` (``logits_per_image``, ``logits_per_text``, optional contrastive loss)."""

    config_class = TulipConfig
    base_model_prefix = "tulip"
    main_input_name = "input_ids"
    input_modalities = ["image", "text"]
    supports_gradient_checkpointing = True
    _no_split_modules = ["TulipEncoderLayer", "CLIPEncoderLayer"]

    def __init__(self, config: TulipConfig):
        super().__init__(config)
        self.projection_dim = config.projection_dim
        self.text_embed_dim = config.text_config.hidden_size
        self.vision_embed_dim = config.vision_config.hidden_size
        self.text_model = TulipTextModel._from_config(config.text_config)
        self.vision_model = CLIPVisionModel._from_config(config.vision_config)
        self.visual_projection = nn.Linear(self.vision_embed_dim, self.projection_dim, bias=False)
        self.text_projection = nn.Linear(self.text_embed_dim, self.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        self.post_init()

    # Same attributes as CLIPModel, so its feature and logit code applies unchanged.
    get_text_features = CLIPModel.get_text_features
    get_image_features = CLIPModel.get_image_features
    forward = CLIPModel.forward
