"""Stand-in for ``comfy.sd`` (ComfyUI v0.3.64): the ``CLIP`` object and the text-encoder loader.

Mirrors:

* ``CLIP.clone()`` shares ``cond_stage_model`` and ``tokenizer``, clones the patcher and copies
  ``layer_idx`` and ``tokenizer_options``; ``add_patches`` / ``get_key_patches`` are the
  patcher's; ``clip_layer(i)`` sets ``layer_idx``; ``tokenize`` is the tokenizer's
  ``tokenize_with_weights``; ``encode_from_tokens_scheduled(tokens, add_dict=...)`` returns
  CONDITIONING, ``[[cond [1, L, C], {"pooled_output": [1, P], **add_dict}]]``, encoding with the
  patches applied and layer ``layer_idx`` when it is set.
* ``load_text_encoder_state_dicts(state_dicts, embedding_directory, clip_type, model_options)``:
  the family from the number of state dicts and ``clip_type`` (one: SD1.x's CLIP, or the SDXL
  refiner's for a tower with a layer 30; two: SDXL's, or SD3's / Flux's by ``clip_type``; three:
  SD3's); each tower and its tokenizer read as many tokens as its position table has rows (the
  rule of ``comfy.text_encoders.long_clipl``).

Differences: T5 is recognised by ``shared.weight`` (ComfyUI: by its block 23); OpenAI-layout
state dicts are not converted (the nodes hand over ``text_model.*`` keys).
"""

from __future__ import annotations

from enum import Enum

from . import sdxl_clip
from .model_patcher import ModelPatcher
from .sd1_clip import SD1ClipModel, SD1Tokenizer
from .text_encoders import flux, sd3_clip

_POSITIONS = "text_model.embeddings.position_embedding.weight"


class CLIPType(Enum):
    STABLE_DIFFUSION = 1
    STABLE_CASCADE = 2
    SD3 = 3
    FLUX = 6


class CLIP:
    def __init__(self, cond_stage_model=None, tokenizer=None, no_init=False):
        if no_init:
            return
        self.cond_stage_model = cond_stage_model.eval()
        self.tokenizer = tokenizer
        self.patcher = ModelPatcher(self.cond_stage_model)
        self.layer_idx = None
        self.tokenizer_options = {}
        self.use_clip_schedule = False
        self.apply_hooks_to_conds = None

    def clone(self):
        n = CLIP(no_init=True)
        n.patcher = self.patcher.clone()
        n.cond_stage_model = self.cond_stage_model
        n.tokenizer = self.tokenizer
        n.layer_idx = self.layer_idx
        n.tokenizer_options = self.tokenizer_options.copy()
        n.use_clip_schedule = self.use_clip_schedule
        n.apply_hooks_to_conds = self.apply_hooks_to_conds
        return n

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        return self.patcher.add_patches(patches, strength_patch, strength_model)

    def set_tokenizer_option(self, option_name, value):
        self.tokenizer_options[option_name] = value

    def clip_layer(self, layer_idx):
        self.layer_idx = layer_idx

    def tokenize(self, text, return_word_ids=False, **kwargs):
        return self.tokenizer.tokenize_with_weights(text, return_word_ids, **kwargs)

    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        self.cond_stage_model.reset_clip_options()
        if self.layer_idx is not None:
            self.cond_stage_model.set_clip_options({"layer": self.layer_idx})
        self.patcher.patch_model()
        try:
            cond, pooled = self.cond_stage_model.encode_token_weights(tokens)
        finally:
            self.patcher.unpatch_model()
        if return_dict:
            return {"cond": cond, "pooled_output": pooled}
        return (cond, pooled) if return_pooled else cond

    def encode_from_tokens_scheduled(self, tokens, unprojected=False, add_dict=None, show_pbar=True):
        out = self.encode_from_tokens(tokens, return_pooled=True, return_dict=True)
        cond = out.pop("cond")
        out.update(add_dict or {})
        return [[cond, out]]

    def encode(self, text):
        return self.encode_from_tokens(self.tokenize(text))

    def get_sd(self):
        return self.cond_stage_model.state_dict()

    def get_key_patches(self):
        return self.patcher.get_key_patches()


def _kind(state_dict) -> str:
    if "shared.weight" in state_dict:
        return "t5xxl"
    if "text_model.encoder.layers.30.mlp.fc1.weight" in state_dict:
        return "clip_g"
    return "clip_l"


def load_text_encoder_state_dicts(
    state_dicts=(), embedding_directory=None, clip_type=CLIPType.STABLE_DIFFUSION, model_options=None
):
    towers = {}
    for state_dict in state_dicts:
        towers[_kind(state_dict)] = state_dict
    tokenizer_data = {f"{name}_max_length": sd[_POSITIONS].shape[0] for name, sd in towers.items() if _POSITIONS in sd}
    if len(state_dicts) == 3 or clip_type == CLIPType.SD3:
        model = sd3_clip.SD3ClipModel(towers.get("clip_l"), towers.get("clip_g"), towers.get("t5xxl"))
        tokenizer = sd3_clip.SD3Tokenizer(embedding_directory, tokenizer_data)
    elif len(state_dicts) == 2 and clip_type == CLIPType.FLUX:
        model = flux.FluxClipModel(towers["clip_l"], towers["t5xxl"])
        tokenizer = flux.FluxTokenizer(embedding_directory, tokenizer_data)
    elif len(state_dicts) == 2:
        model = sdxl_clip.SDXLClipModel(towers["clip_l"], towers["clip_g"])
        tokenizer = sdxl_clip.SDXLTokenizer(embedding_directory, tokenizer_data)
    elif "clip_g" in towers:
        model = sdxl_clip.SDXLRefinerClipModel(towers["clip_g"])
        tokenizer = sdxl_clip.SDXLTokenizer(embedding_directory, tokenizer_data)
    else:
        model = SD1ClipModel(towers["clip_l"])
        tokenizer = SD1Tokenizer(embedding_directory, tokenizer_data)
    return CLIP(model, tokenizer)
