"""Stand-in for ``comfy.text_encoders.flux`` (ComfyUI v0.3.64): Flux.1's CLIP.

Mirrors: ``clip_l`` (last layer, pooled unprojected) gives only the pooled vector, ``t5xxl``
the token features; tokens come as ``{"l": ..., "t5xxl": ...}``, T5's padded to 256.
"""

from __future__ import annotations

import torch

from ..sd1_clip import SDClipModel, SDTokenizer
from .sd3_clip import T5XXLModel, T5XXLTokenizer


class FluxTokenizer:
    def __init__(self, embedding_directory=None, tokenizer_data=None):
        self.clip_l = SDTokenizer(embedding_directory, tokenizer_data)
        self.t5xxl = T5XXLTokenizer(embedding_directory, tokenizer_data, min_length=256)

    def tokenize_with_weights(self, text, return_word_ids=False, **kwargs):
        return {
            "l": self.clip_l.tokenize_with_weights(text, return_word_ids),
            "t5xxl": self.t5xxl.tokenize_with_weights(text, return_word_ids),
        }

    def state_dict(self):
        return {}


class FluxClipModel(torch.nn.Module):
    def __init__(self, weights_l, weights_t5):
        super().__init__()
        self.clip_l = SDClipModel(weights_l, return_projected_pooled=False)
        self.t5xxl = T5XXLModel(weights_t5)

    def set_clip_options(self, options):
        self.clip_l.set_clip_options(options)
        self.t5xxl.set_clip_options(options)

    def reset_clip_options(self):
        self.clip_l.reset_clip_options()
        self.t5xxl.reset_clip_options()

    def encode_token_weights(self, token_weight_pairs):
        t5_out, _ = self.t5xxl.encode_token_weights(token_weight_pairs["t5xxl"])
        _, l_pooled = self.clip_l.encode_token_weights(token_weight_pairs["l"])
        return t5_out, l_pooled
