"""Stand-in for ``comfy.text_encoders.sd3_clip`` (ComfyUI v0.3.64): SD3's CLIP and the T5-XXL tower.

Mirrors: an SD3 CLIP holds any of ``clip_l`` (penultimate layer, no final LayerNorm, pooled
unprojected), ``clip_g`` (as SDXL's) and ``t5xxl``; the CLIP features are concatenated, padded to
T5's width and put before T5's tokens on the token axis; the pooled vectors are concatenated.
The T5 here is a stand-in (a token embedding scaled by its final norm's gain) with T5's key names
``shared.weight`` and ``encoder.final_layer_norm.weight``; its tokenizer reuses CLIP's ids without
a start token (folded into T5's vocabulary), ends with 1 and pads with 0 to ``min_length``.
"""

from __future__ import annotations

import torch

from ..sd1_clip import SDClipModel, SDTokenizer, clip_tokenizer, token_weights
from ..sdxl_clip import sdxl_clip_g


class T5XXLTokenizer:
    def __init__(self, embedding_directory=None, tokenizer_data=None, min_length=77):
        self.min_length = min_length

    def tokenize_with_weights(self, text, return_word_ids=False, **kwargs):
        tokens = []
        for segment, weight in token_weights(text):
            tokens += [(t, weight) for t in clip_tokenizer()(segment)["input_ids"][1:-1]]
        tokens.append((1, 1.0))
        tokens += [(0, 1.0)] * max(0, self.min_length - len(tokens))
        return [tokens]

    def state_dict(self):
        return {}


class _Norm(torch.nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = torch.nn.Parameter(weight.float().clone())


class _T5(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.shared = torch.nn.Embedding.from_pretrained(weights["shared.weight"].float().clone(), freeze=True)
        self.encoder = torch.nn.Module()
        self.encoder.final_layer_norm = _Norm(weights["encoder.final_layer_norm.weight"])


class T5XXLModel(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.transformer = _T5(weights)
        self.logit_scale = torch.nn.Parameter(torch.tensor(4.6055))

    def set_clip_options(self, options):
        pass

    def reset_clip_options(self):
        pass

    @torch.no_grad()
    def encode_token_weights(self, token_weight_pairs):
        ids = (
            torch.tensor([[t for t, _ in chunk] for chunk in token_weight_pairs])
            % self.transformer.shared.num_embeddings
        )
        z = self.transformer.shared(ids) * self.transformer.encoder.final_layer_norm.weight
        return z.reshape(1, -1, z.shape[-1]), None


class SD3Tokenizer:
    def __init__(self, embedding_directory=None, tokenizer_data=None):
        self.clip_l = SDTokenizer(embedding_directory, tokenizer_data)
        self.clip_g = SDTokenizer(embedding_directory, tokenizer_data, embedding_key="clip_g", pad_with_end=False)
        self.t5xxl = T5XXLTokenizer(embedding_directory, tokenizer_data)

    def tokenize_with_weights(self, text, return_word_ids=False, **kwargs):
        return {
            "g": self.clip_g.tokenize_with_weights(text, return_word_ids),
            "l": self.clip_l.tokenize_with_weights(text, return_word_ids),
            "t5xxl": self.t5xxl.tokenize_with_weights(text, return_word_ids),
        }

    def state_dict(self):
        return {}


class SD3ClipModel(torch.nn.Module):
    def __init__(self, weights_l=None, weights_g=None, weights_t5=None):
        super().__init__()
        self.clip_l = None
        if weights_l is not None:
            self.clip_l = SDClipModel(
                weights_l, layer="hidden", layer_idx=-2, layer_norm_hidden_state=False, return_projected_pooled=False
            )
        self.clip_g = sdxl_clip_g(weights_g) if weights_g is not None else None
        self.t5xxl = T5XXLModel(weights_t5) if weights_t5 is not None else None

    def _towers(self):
        return [tower for tower in (self.clip_l, self.clip_g, self.t5xxl) if tower is not None]

    def set_clip_options(self, options):
        for tower in self._towers():
            tower.set_clip_options(options)

    def reset_clip_options(self):
        for tower in self._towers():
            tower.reset_clip_options()

    def encode_token_weights(self, token_weight_pairs):
        parts, pooled = [], []
        for tower, key in ((self.clip_l, "l"), (self.clip_g, "g")):
            if tower is not None:
                out, tower_pooled = tower.encode_token_weights(token_weight_pairs[key])
                parts.append(out)
                pooled.append(tower_pooled)
        cut = min(part.shape[1] for part in parts)
        clip_out = torch.cat([part[:, :cut] for part in parts], dim=-1)
        if self.t5xxl is None:
            return clip_out, torch.cat(pooled, dim=-1)
        t5_out, _ = self.t5xxl.encode_token_weights(token_weight_pairs["t5xxl"])
        clip_out = torch.nn.functional.pad(clip_out, (0, t5_out.shape[-1] - clip_out.shape[-1]))
        return torch.cat([clip_out, t5_out], dim=-2), torch.cat(pooled, dim=-1)
