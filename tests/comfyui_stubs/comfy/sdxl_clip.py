"""Stand-in for ``comfy.sdxl_clip`` (ComfyUI v0.3.64): SDXL's CLIP (CLIP-L + OpenCLIP bigG).

Mirrors: both towers read the penultimate layer without the final LayerNorm (``clip_l`` as
``"hidden"`` -2, ``clip_g`` likewise), concatenated on the feature axis after cutting both to the
shorter token count; the pooled vector is ``clip_g``'s projected one; ``clip_g``'s tokenizer pads
with 0 and ``clip_l``'s with the end token; tokens come as ``{"g": ..., "l": ...}``. The refiner's
CLIP has ``clip_g`` only.
"""

from __future__ import annotations

import torch

from .sd1_clip import SD1ClipModel, SDClipModel, SDTokenizer


def sdxl_clip_g(weights) -> SDClipModel:
    return SDClipModel(weights, layer="hidden", layer_idx=-2, layer_norm_hidden_state=False, pad_token=0)


class SDXLTokenizer:
    def __init__(self, embedding_directory=None, tokenizer_data=None):
        self.clip_l = SDTokenizer(embedding_directory, tokenizer_data)
        self.clip_g = SDTokenizer(embedding_directory, tokenizer_data, embedding_key="clip_g", pad_with_end=False)

    def tokenize_with_weights(self, text, return_word_ids=False, **kwargs):
        return {
            "g": self.clip_g.tokenize_with_weights(text, return_word_ids),
            "l": self.clip_l.tokenize_with_weights(text, return_word_ids),
        }

    def state_dict(self):
        return {}


class SDXLClipModel(torch.nn.Module):
    def __init__(self, weights_l, weights_g):
        super().__init__()
        self.clip_l = SDClipModel(weights_l, layer="hidden", layer_idx=-2, layer_norm_hidden_state=False)
        self.clip_g = sdxl_clip_g(weights_g)

    def set_clip_options(self, options):
        self.clip_l.set_clip_options(options)
        self.clip_g.set_clip_options(options)

    def reset_clip_options(self):
        self.clip_g.reset_clip_options()
        self.clip_l.reset_clip_options()

    def encode_token_weights(self, token_weight_pairs):
        g_out, g_pooled = self.clip_g.encode_token_weights(token_weight_pairs["g"])
        l_out, _ = self.clip_l.encode_token_weights(token_weight_pairs["l"])
        cut = min(l_out.shape[1], g_out.shape[1])
        return torch.cat([l_out[:, :cut], g_out[:, :cut]], dim=-1), g_pooled


class SDXLRefinerClipModel(SD1ClipModel):
    def __init__(self, weights_g):
        torch.nn.Module.__init__(self)
        self.clip = "clip_g"
        self.clip_g = sdxl_clip_g(weights_g)

    def set_clip_options(self, options):
        self.clip_g.set_clip_options(options)

    def reset_clip_options(self):
        self.clip_g.reset_clip_options()

    def encode_token_weights(self, token_weight_pairs):
        return self.clip_g.encode_token_weights(token_weight_pairs["g"])
