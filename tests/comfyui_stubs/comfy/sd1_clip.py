"""Stand-in for ``comfy.sd1_clip`` (ComfyUI v0.3.64): CLIP towers, their tokenizer, and SD1.x's CLIP.

Mirrors ComfyUI's observable behaviour:

* ``SDTokenizer.tokenize_with_weights``: ``(text:1.5)`` / ``(text)`` weights (nested ones
  multiply, ``\\(`` escapes), each weighted segment tokenized as one group; chunks of
  ``max_length`` tokens, each ``[start, ..., end, pad...]``; a group of 8 tokens or more is split at
  a chunk border, a shorter one moves whole to the next chunk. ``max_length`` comes from
  ``tokenizer_data["<tower>_max_length"]`` (ComfyUI sets it from a tower's position table).
* ``SDClipModel``: ``layer`` ``"last"`` (after the final LayerNorm) or ``"hidden"`` with
  ``layer_idx`` (LayerNorm applied when ``layer_norm_hidden_state``); ``set_clip_options`` /
  ``reset_clip_options`` (a ``layer`` whose absolute value exceeds the depth means ``"last"``);
  ``encode_token_weights`` encodes every chunk, weights each token as
  ``(z - z_empty) * w + z_empty`` against an empty prompt, joins the chunks on the token axis and
  pools from the first chunk (projected or not).
* The state dict of a tower: ``transformer.text_model.*``, ``transformer.text_projection.weight``
  and ``logit_scale``.

Differences (see the package docstring): sized from the weights, float32, no textual inversions.
"""

from __future__ import annotations

import functools
import os

import torch
from transformers import CLIPTokenizer

from longclip_diffusers.conversion.convert import convert_checkpoint

TOKENIZER_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "sd1_tokenizer")
#: ComfyUI keeps a multi-token group together below this many tokens.
MAX_WORD_LENGTH = 8


@functools.cache
def clip_tokenizer(path: str = TOKENIZER_DIR) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(path)


def token_weights(text: str, weight: float = 1.0) -> list[tuple[str, float]]:
    """``[(segment, weight)]`` of a prompt in ComfyUI's weighting syntax."""
    out, pieces, depth, current = [], [], 0, ""
    for char in text:
        if char == "(":
            if depth == 0:
                if current:
                    pieces.append(current)
                current = "("
            else:
                current += char
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                pieces.append(current + ")")
                current = ""
            else:
                current += char
        else:
            current += char
    if current:
        pieces.append(current)
    for piece in pieces:
        if len(piece) >= 2 and piece[0] == "(" and piece[-1] == ")":
            inner, inner_weight = piece[1:-1], weight * 1.1
            colon = inner.rfind(":")
            if colon > 0:
                try:
                    inner_weight = float(inner[colon + 1 :])
                    inner = inner[:colon]
                except ValueError:
                    pass
            out += token_weights(inner, inner_weight)
        else:
            out.append((piece, weight))
    return out


class SDTokenizer:
    def __init__(
        self, embedding_directory=None, tokenizer_data=None, embedding_key="clip_l", pad_with_end=True, max_length=77
    ):
        self.tokenizer = clip_tokenizer()
        self.max_length = (tokenizer_data or {}).get(f"{embedding_key}_max_length", max_length)
        self.embedding_directory = embedding_directory
        self.embedding_key = embedding_key
        empty = self.tokenizer("")["input_ids"]
        self.start_token, self.end_token = empty[0], empty[1]
        self.pad_token = self.end_token if pad_with_end else 0

    def tokenize_with_weights(self, text: str, return_word_ids=False, **kwargs):
        escaped = text.replace("\\)", "\0\1").replace("\\(", "\0\2")
        groups = []
        for segment, weight in token_weights(escaped):
            segment = segment.replace("\0\1", ")").replace("\0\2", "(")
            if segment:
                groups.append([(t, weight) for t in self.tokenizer(segment)["input_ids"][1:-1]])
        chunks, chunk = [], [(self.start_token, 1.0, 0)]
        chunks.append(chunk)
        for word_id, group in enumerate(groups, start=1):
            large = len(group) >= MAX_WORD_LENGTH
            while group:
                room = self.max_length - 1 - len(chunk)
                if len(group) <= room:
                    chunk.extend((t, w, word_id) for t, w in group)
                    group = []
                    continue
                if large:
                    chunk.extend((t, w, word_id) for t, w in group[:room])
                    chunk.append((self.end_token, 1.0, 0))
                    group = group[room:]
                else:
                    chunk.append((self.end_token, 1.0, 0))
                    chunk.extend([(self.pad_token, 1.0, 0)] * room)
                chunk = [(self.start_token, 1.0, 0)]
                chunks.append(chunk)
        chunk.append((self.end_token, 1.0, 0))
        chunk.extend([(self.pad_token, 1.0, 0)] * (self.max_length - len(chunk)))
        if return_word_ids:
            return chunks
        return [[(t, w) for t, w, _ in c] for c in chunks]

    def state_dict(self):
        return {}


def _identity_projection(weights: dict) -> dict:
    """ComfyUI's towers always have a projection; files without one leave it unused."""
    if "text_projection.weight" in weights:
        return weights
    width = weights["text_model.embeddings.token_embedding.weight"].shape[1]
    return {**weights, "text_projection.weight": torch.eye(width)}


class SDClipModel(torch.nn.Module):
    def __init__(
        self,
        weights,
        layer="last",
        layer_idx=None,
        layer_norm_hidden_state=True,
        return_projected_pooled=True,
        pad_token=None,
    ):
        super().__init__()
        tokenizer = clip_tokenizer()
        self.transformer = convert_checkpoint(
            _identity_projection(dict(weights)),
            kind="text_with_projection",
            ratio=1.0,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        self.num_layers = self.transformer.config.num_hidden_layers
        self.logit_scale = torch.nn.Parameter(torch.tensor(4.6055))
        self.special_tokens = {"start": tokenizer.bos_token_id, "end": tokenizer.eos_token_id}
        self.special_tokens["pad"] = tokenizer.eos_token_id if pad_token is None else pad_token
        self.layer_norm_hidden_state = layer_norm_hidden_state
        self.layer, self.layer_idx, self.return_projected_pooled = "last", None, return_projected_pooled
        if layer == "hidden":
            self.set_clip_options({"layer": layer_idx})
        self.options_default = (self.layer, self.layer_idx, self.return_projected_pooled)

    def set_clip_options(self, options):
        layer_idx = options.get("layer", self.layer_idx)
        self.return_projected_pooled = options.get("projected_pooled", self.return_projected_pooled)
        if layer_idx is None or abs(layer_idx) > self.num_layers:
            self.layer = "last"
        else:
            self.layer, self.layer_idx = "hidden", layer_idx

    def reset_clip_options(self):
        self.layer, self.layer_idx, self.return_projected_pooled = self.options_default

    def forward(self, token_lists):
        ids = torch.tensor(token_lists, dtype=torch.long)
        out = self.transformer(ids, output_hidden_states=True)
        if self.layer == "last":
            z = out.last_hidden_state
        else:
            z = out.hidden_states[self.layer_idx]
            if self.layer_norm_hidden_state:
                z = self.transformer.text_model.final_layer_norm(z)
        eos = (ids == self.special_tokens["end"]).int().argmax(dim=-1)
        pooled = out.last_hidden_state[torch.arange(ids.shape[0]), eos]
        if self.return_projected_pooled:
            pooled = self.transformer.text_projection(pooled)
        return z.float(), pooled.float()

    @torch.no_grad()
    def encode_token_weights(self, token_weight_pairs):
        chunks = [[t for t, _ in chunk] for chunk in token_weight_pairs]
        weighted = any(w != 1.0 for chunk in token_weight_pairs for _, w in chunk)
        length = max(len(c) for c in chunks)
        if weighted:
            empty = [self.special_tokens["start"], self.special_tokens["end"]]
            chunks.append(empty + [self.special_tokens["pad"]] * (length - 2))
        out, pooled = self(chunks)
        parts = []
        for k, chunk in enumerate(token_weight_pairs):
            z = out[k : k + 1].clone()
            for j, (_, w) in enumerate(chunk):
                if w != 1.0:
                    z[0, j] = (z[0, j] - out[-1, j]) * w + out[-1, j]
            parts.append(z)
        return torch.cat(parts, dim=-2), pooled[0:1]


class SD1Tokenizer:
    def __init__(self, embedding_directory=None, tokenizer_data=None):
        self.clip_l = SDTokenizer(embedding_directory, tokenizer_data)

    def tokenize_with_weights(self, text, return_word_ids=False, **kwargs):
        return {"l": self.clip_l.tokenize_with_weights(text, return_word_ids)}

    def state_dict(self):
        return {}


class SD1ClipModel(torch.nn.Module):
    """SD1.x's CLIP: one CLIP-L tower, the last layer after the final LayerNorm, pooled unprojected."""

    def __init__(self, weights):
        super().__init__()
        self.clip = "clip_l"
        self.clip_l = SDClipModel(weights, return_projected_pooled=False)

    def set_clip_options(self, options):
        self.clip_l.set_clip_options(options)

    def reset_clip_options(self):
        self.clip_l.reset_clip_options()

    def encode_token_weights(self, token_weight_pairs):
        return self.clip_l.encode_token_weights(token_weight_pairs["l"])
