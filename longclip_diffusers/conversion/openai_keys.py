"""The OpenAI CLIP checkpoint layout (used by Long-CLIP's released weights) and THE key map from
it to transformers' ``CLIPModel`` keys.

Pure functions on state dicts, nothing read or written here. The layout, the two Long-CLIP
position tables and the "heads = width // 64" rule are in docs/checkpoint-format.md.

* :func:`infer_text_config`, :func:`infer_vision_config`, :func:`infer_clip_config`: transformers
  configs from tensor shapes.
* :func:`check_openai_state_dict`: missing keys, unexpected keys and inconsistent shapes, as one
  :class:`~longclip_diffusers.errors.CheckpointError` naming the keys and the fix.
* :func:`openai_to_transformers`, :func:`openai_text_to_transformers`: the key map (with the two
  position tables merged into one); :func:`resblocks_to_transformers` maps just the transformer
  blocks, for towers that share them but not the position table (TULIP's RoPE tower).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import torch
from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

from ..constants import STOCK_LENGTH
from ..errors import CheckpointError, VocabularyMismatchError

#: Long-CLIP's forward adds ``positional_embedding`` through a 0/1 mask that is 1 on rows 0-19 and
#: ``positional_embedding_res`` through the complementary mask (docs/checkpoint-format.md; the masks
#: are not saved). This is the first row of the second mask.
LONGCLIP_MASK_SPLIT = 20

#: The CLIP BPE tokenizer's start and end ids (docs/checkpoint-format.md); EOT is the largest id.
CLIP_BOS_TOKEN_ID = 49406
CLIP_EOS_TOKEN_ID = 49407

#: Context length of OpenAI's CLIP; a single table of this length is a plain CLIP checkpoint.
OPENAI_CONTEXT_LENGTH = STOCK_LENGTH

#: OpenAI's (and Long-CLIP's) loader derives the head count as width // 64 in both towers.
HEAD_WIDTH = 64

#: Non-tensor bookkeeping entries of OpenAI's JIT files (docs/checkpoint-format.md), not weights.
IGNORED_KEYS = frozenset({"input_resolution", "context_length", "vocab_size"})

LOGIT_SCALE_KEY = "logit_scale"
#: The file open_clip's hub repos publish beside their checkpoints, with the model config.
OPEN_CLIP_CONFIG_NAME = "open_clip_config.json"
VISION_PREFIX = "visual."
TEXT_POSITION_KEY = "text_model.embeddings.position_embedding.weight"

_BLOCK_RENAMES = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


@dataclass(frozen=True)
class TextTower:
    """Sizes of an OpenAI-layout text tower; ``mlp_width`` is 4 * ``width`` in every CLIP."""

    width: int
    layers: int
    vocab_size: int
    context: int
    embed_dim: int
    mlp_width: int
    two_position_tables: bool = True

    def shapes(self, prefix: str = "") -> dict[str, tuple[int, ...]]:
        """Every key of this tower in the OpenAI layout with its shape."""
        w = self.width
        shapes: dict[str, tuple[int, ...]] = {
            f"{prefix}token_embedding.weight": (self.vocab_size, w),
            f"{prefix}positional_embedding": (self.context, w),
        }
        if self.two_position_tables:
            shapes[f"{prefix}positional_embedding_res"] = (self.context, w)
        shapes.update(_resblock_shapes(f"{prefix}transformer.resblocks.", self.layers, w, self.mlp_width))
        shapes[f"{prefix}ln_final.weight"] = (w,)
        shapes[f"{prefix}ln_final.bias"] = (w,)
        shapes[f"{prefix}text_projection"] = (w, self.embed_dim)
        return shapes

    def config(
        self,
        num_heads: int | None = None,
        bos_token_id: int = CLIP_BOS_TOKEN_ID,
        eos_token_id: int = CLIP_EOS_TOKEN_ID,
        hidden_act: str = "quick_gelu",
    ) -> CLIPTextConfig:
        """The transformers config (QuickGELU unless ``hidden_act``, LayerNorm eps 1e-5,
        docs/checkpoint-format.md)."""
        for name, value in (("bos_token_id", bos_token_id), ("eos_token_id", eos_token_id)):
            if not 0 <= value < self.vocab_size:
                raise VocabularyMismatchError(
                    f"{name}={value} is outside the checkpoint's vocabulary of {self.vocab_size} "
                    f"tokens. Fix: pass {name}= the tokenizer's id for it.",
                    self.vocab_size,
                )
        return CLIPTextConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.width,
            intermediate_size=self.mlp_width,
            num_hidden_layers=self.layers,
            num_attention_heads=_heads(self.width, num_heads, "text"),
            max_position_embeddings=self.context,
            projection_dim=self.embed_dim,
            hidden_act=hidden_act,
            layer_norm_eps=1e-5,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
        )


@dataclass(frozen=True)
class VisionTower:
    """Sizes of an OpenAI-layout vision tower (the ``visual.`` keys)."""

    width: int
    layers: int
    patch: int
    image_size: int
    embed_dim: int
    mlp_width: int
    channels: int = 3

    @property
    def positions(self) -> int:
        """One position per patch plus the class token."""
        return (self.image_size // self.patch) ** 2 + 1

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every ``visual.`` key with its shape."""
        w, p = self.width, VISION_PREFIX
        shapes: dict[str, tuple[int, ...]] = {
            f"{p}conv1.weight": (w, self.channels, self.patch, self.patch),
            f"{p}class_embedding": (w,),
            f"{p}positional_embedding": (self.positions, w),
            f"{p}ln_pre.weight": (w,),
            f"{p}ln_pre.bias": (w,),
        }
        shapes.update(_resblock_shapes(f"{p}transformer.resblocks.", self.layers, w, self.mlp_width))
        shapes[f"{p}ln_post.weight"] = (w,)
        shapes[f"{p}ln_post.bias"] = (w,)
        shapes[f"{p}proj"] = (w, self.embed_dim)
        return shapes

    def config(self, num_heads: int | None = None, hidden_act: str = "quick_gelu") -> CLIPVisionConfig:
        """The transformers config (QuickGELU unless ``hidden_act``, LayerNorm eps 1e-5,
        docs/checkpoint-format.md)."""
        return CLIPVisionConfig(
            hidden_size=self.width,
            intermediate_size=self.mlp_width,
            num_hidden_layers=self.layers,
            num_attention_heads=_heads(self.width, num_heads, "vision"),
            num_channels=self.channels,
            image_size=self.image_size,
            patch_size=self.patch,
            projection_dim=self.embed_dim,
            hidden_act=hidden_act,
            layer_norm_eps=1e-5,
        )


@dataclass(frozen=True)
class TowerSettings:
    """What a checkpoint's tensors cannot tell: head counts and activation. The defaults are
    OpenAI's (heads of 64, QuickGELU); open_clip models trained from scratch, such as SDXL's
    ViT-bigG/14, use exact GELU and may use other head widths (bigG's vision tower: heads of
    104), which their ``open_clip_config.json`` records (:func:`open_clip_settings`)."""

    text_heads: int | None = None
    vision_heads: int | None = None
    hidden_act: str = "quick_gelu"


def open_clip_settings(config: dict) -> TowerSettings:
    """:class:`TowerSettings` from an open_clip model config: the ``model_cfg`` of the
    ``open_clip_config.json`` published beside hub checkpoints, or a bare model config
    (open_clip's ``model_configs/*.json``). open_clip's own defaults fill what is left out:
    8 text heads, vision heads of 64, GELU unless ``quick_gelu`` is true."""
    model_cfg = config.get("model_cfg", config)
    text_cfg, vision_cfg = model_cfg.get("text_cfg"), model_cfg.get("vision_cfg")
    if not isinstance(text_cfg, dict) or not isinstance(vision_cfg, dict):
        raise CheckpointError(
            "the open_clip config has no 'text_cfg' / 'vision_cfg' (under 'model_cfg'). Fix: pass the "
            "open_clip_config.json published with the checkpoint, or open_clip's model config for it."
        )
    if "hf_model_name" in text_cfg or "timm_model_name" in vision_cfg:
        raise CheckpointError(
            "the open_clip config describes a Hugging Face text tower or a timm vision tower, not "
            "CLIP's own transformers. Fix: convert a CLIP-architecture model (e.g. ViT-bigG-14)."
        )
    vision_width = int(vision_cfg.get("width", 768))
    head_width = int(vision_cfg.get("head_width", HEAD_WIDTH))
    return TowerSettings(
        text_heads=int(text_cfg.get("heads", 8)),
        vision_heads=vision_width // head_width,
        hidden_act="quick_gelu" if model_cfg.get("quick_gelu") else "gelu",
    )


def has_vision(state_dict: dict[str, torch.Tensor]) -> bool:
    """Whether the state dict carries a vision tower (any ``visual.`` key)."""
    return any(key.startswith(VISION_PREFIX) for key in state_dict)


def has_plain_openai_positions(state_dict: dict[str, torch.Tensor], prefix: str = "") -> bool:
    """A single 77-row position table: plain OpenAI CLIP, to be stretched to Long-CLIP's 248."""
    table = state_dict.get(f"{prefix}positional_embedding")
    return (
        f"{prefix}positional_embedding_res" not in state_dict
        and table is not None
        and table.shape[0] == OPENAI_CONTEXT_LENGTH
    )


def text_tower(state_dict: dict[str, torch.Tensor], prefix: str = "") -> TextTower:
    """Sizes of the text tower read from tensor shapes; depth counts the resblocks."""
    _require_clip(state_dict, prefix)
    token = _required(state_dict, f"{prefix}token_embedding.weight", ndim=2)
    positions = _required(state_dict, f"{prefix}positional_embedding", ndim=2)
    projection = _required(state_dict, f"{prefix}text_projection", ndim=2)
    blocks = f"{prefix}transformer.resblocks."
    return TextTower(
        width=token.shape[1],
        layers=_count_blocks(state_dict, blocks),
        vocab_size=token.shape[0],
        context=positions.shape[0],
        embed_dim=projection.shape[1],
        mlp_width=_required(state_dict, f"{blocks}0.mlp.c_fc.weight", ndim=2).shape[0],
        two_position_tables=f"{prefix}positional_embedding_res" in state_dict,
    )


def vision_tower(state_dict: dict[str, torch.Tensor]) -> VisionTower:
    """Sizes of the vision tower: patch from ``conv1``, image size from the position count."""
    p = VISION_PREFIX
    conv = _required(state_dict, f"{p}conv1.weight", ndim=4)
    positions = _required(state_dict, f"{p}positional_embedding", ndim=2).shape[0]
    projection = _required(state_dict, f"{p}proj", ndim=2)
    grid = math.isqrt(max(positions - 1, 0))
    if positions < 2 or grid * grid != positions - 1:
        raise CheckpointError(
            f"'{p}positional_embedding' has {positions} rows, which is not a square grid of "
            "patches plus one class token; the vision tower is damaged or not CLIP. "
            "Fix: use an unmodified OpenAI-layout CLIP / Long-CLIP checkpoint."
        )
    return VisionTower(
        width=conv.shape[0],
        layers=_count_blocks(state_dict, f"{p}transformer.resblocks."),
        patch=conv.shape[-1],
        image_size=grid * conv.shape[-1],
        embed_dim=projection.shape[1],
        mlp_width=_required(state_dict, f"{p}transformer.resblocks.0.mlp.c_fc.weight", ndim=2).shape[0],
        channels=conv.shape[1],
    )


def infer_text_config(
    state_dict: dict[str, torch.Tensor],
    prefix: str = "",
    num_heads: int | None = None,
    bos_token_id: int = CLIP_BOS_TOKEN_ID,
    eos_token_id: int = CLIP_EOS_TOKEN_ID,
    settings: TowerSettings | None = None,
) -> CLIPTextConfig:
    """``CLIPTextConfig`` from the text tower's shapes; heads = width // 64 unless ``num_heads``
    (or ``settings``, e.g. :func:`open_clip_settings`). The special ids must lie in the vocabulary
    (pooling reads the hidden state at the EOS id)."""
    settings = settings or TowerSettings()
    heads = num_heads if num_heads is not None else settings.text_heads
    return text_tower(state_dict, prefix).config(heads, bos_token_id, eos_token_id, settings.hidden_act)


def infer_vision_config(
    state_dict: dict[str, torch.Tensor], num_heads: int | None = None, settings: TowerSettings | None = None
) -> CLIPVisionConfig:
    """``CLIPVisionConfig`` from the ``visual.`` shapes; heads = width // 64 unless ``num_heads``
    (or ``settings``)."""
    settings = settings or TowerSettings()
    heads = num_heads if num_heads is not None else settings.vision_heads
    return vision_tower(state_dict).config(heads, settings.hidden_act)


def infer_clip_config(
    state_dict: dict[str, torch.Tensor],
    num_heads: int | None = None,
    bos_token_id: int = CLIP_BOS_TOKEN_ID,
    eos_token_id: int = CLIP_EOS_TOKEN_ID,
    settings: TowerSettings | None = None,
) -> CLIPConfig:
    """``CLIPConfig`` (text + vision) from shapes; ``num_heads`` overrides both towers, else
    ``settings`` gives each tower's heads and the activation."""
    text = infer_text_config(state_dict, "", num_heads, bos_token_id, eos_token_id, settings)
    vision = infer_vision_config(state_dict, num_heads, settings)
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=text.projection_dim)


def check_openai_state_dict(
    state_dict: dict[str, torch.Tensor], *, vision: bool | None = None, prefix: str = ""
) -> None:
    """Raise one :class:`CheckpointError` listing missing keys, unexpected keys and shapes that
    disagree with the sizes read from the anchor tensors. ``vision=None`` requires the vision tower
    exactly when the state dict has ``visual.`` keys; ``vision=False`` ignores them."""
    if vision is None:
        vision = has_vision(state_dict)
    text = text_tower(state_dict, prefix)
    expected = text.shapes(prefix)
    if vision and not has_vision(state_dict):
        raise CheckpointError(
            "the checkpoint has no vision tower (no 'visual.' keys), so it cannot become a "
            "CLIPModel. Fix: convert only the text encoder (kind='text' or 'text_with_projection')."
        )
    if vision:
        # both towers project into one embedding space, whose size the text projection gives
        expected.update(replace(vision_tower(state_dict), embed_dim=text.embed_dim).shapes())
        expected[LOGIT_SCALE_KEY] = ()

    def tolerated(key: str) -> bool:
        # Keys a text conversion leaves behind on purpose, and OpenAI's JIT bookkeeping.
        return key in IGNORED_KEYS or (not vision and (key.startswith(VISION_PREFIX) or key == LOGIT_SCALE_KEY))

    missing = sorted(key for key in expected if key not in state_dict)
    unexpected = sorted(key for key in state_dict if key not in expected and not tolerated(key))
    wrong = [
        f"'{key}' is {list(state_dict[key].shape)}, expected {list(shape)}"
        for key, shape in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != shape
    ]
    problems = []
    if missing:
        problems.append(
            f"missing keys {_listing(missing)} (the file is incomplete, or not a complete "
            "OpenAI-layout CLIP / Long-CLIP checkpoint: re-download or re-export it"
            + ("; for a text-only file convert the text encoder only" if vision else "")
            + ")"
        )
    if unexpected:
        problems.append(
            f"unexpected keys {_listing(unexpected)} (they belong to no CLIP tower: remove them, "
            "or save only the CLIP model's state_dict)"
        )
    if wrong:
        problems.append(
            f"inconsistent shapes: {_listing(wrong, quote=False)} (sizes are read from "
            f"'{prefix}token_embedding.weight', 'visual.conv1.weight' and the first resblock; "
            "the file mixes two models or is damaged: use an unmodified checkpoint)"
        )
    if problems:
        raise CheckpointError("not a valid OpenAI-layout CLIP state dict: " + "; ".join(problems))


def merged_position_table(state_dict: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
    """The single position table the forward pass effectively uses: rows 0-19 of
    ``positional_embedding`` and rows 20.. of ``positional_embedding_res`` (docs/checkpoint-format.md);
    the table itself when there is no second one."""
    first = state_dict[f"{prefix}positional_embedding"]
    second = state_dict.get(f"{prefix}positional_embedding_res")
    if second is None:
        return first.clone()
    return torch.cat([first[:LONGCLIP_MASK_SPLIT], second[LONGCLIP_MASK_SPLIT:]], dim=0)


def resblocks_to_transformers(
    state_dict: dict[str, torch.Tensor], source_prefix: str, target_prefix: str, layers: int
) -> dict[str, torch.Tensor]:
    """Map ``{source_prefix}{i}.*`` OpenAI resblocks to ``{target_prefix}{i}.*`` transformers
    encoder layers: the packed ``in_proj`` split into q, k, v (stacked in that order)."""
    out: dict[str, torch.Tensor] = {}
    for i in range(layers):
        src, dst = f"{source_prefix}{i}.", f"{target_prefix}{i}."
        for kind in ("weight", "bias"):
            q, k, v = state_dict[f"{src}attn.in_proj_{kind}"].chunk(3, dim=0)
            # clone: views of one packed tensor would share storage, which safetensors refuses
            out[f"{dst}self_attn.q_proj.{kind}"] = q.clone()
            out[f"{dst}self_attn.k_proj.{kind}"] = k.clone()
            out[f"{dst}self_attn.v_proj.{kind}"] = v.clone()
            for old, new in _BLOCK_RENAMES.items():
                out[f"{dst}{new}.{kind}"] = state_dict[f"{src}{old}.{kind}"]
    return out


def openai_text_to_transformers(state_dict: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """The text tower as ``CLIPTextModelWithProjection`` keys (``text_model.*`` and
    ``text_projection.weight``), position tables merged. Vision keys are ignored."""
    check_openai_state_dict(state_dict, vision=False, prefix=prefix)
    out = _tower_to_transformers(
        state_dict,
        source=prefix,
        target="text_model.",
        renames={
            "token_embedding.weight": "embeddings.token_embedding.weight",
            **_layer_norm_renames("ln_final", "final_layer_norm"),
        },
        layers=text_tower(state_dict, prefix).layers,
        projection=("text_projection", "text_projection.weight"),
    )
    out[TEXT_POSITION_KEY] = merged_position_table(state_dict, prefix)
    return out


def openai_to_transformers(state_dict: dict[str, torch.Tensor], vision: bool | None = None) -> dict[str, torch.Tensor]:
    """The whole model as ``CLIPModel`` keys. ``vision=None`` maps the vision tower when there is
    one (a text-only state dict gives the text keys only); ``vision=True`` requires it."""
    check_openai_state_dict(state_dict, vision=vision)
    out = openai_text_to_transformers(state_dict)
    if not has_vision(state_dict):
        return out
    out.update(
        _tower_to_transformers(
            state_dict,
            source=VISION_PREFIX,
            target="vision_model.",
            renames={
                "conv1.weight": "embeddings.patch_embedding.weight",
                "class_embedding": "embeddings.class_embedding",
                "positional_embedding": "embeddings.position_embedding.weight",
                # "layrnorm" is transformers' own spelling of this key
                **_layer_norm_renames("ln_pre", "pre_layrnorm"),
                **_layer_norm_renames("ln_post", "post_layernorm"),
            },
            layers=vision_tower(state_dict).layers,
            projection=("proj", "visual_projection.weight"),
        )
    )
    out[LOGIT_SCALE_KEY] = state_dict[LOGIT_SCALE_KEY]
    return out


def _tower_to_transformers(
    state_dict: dict[str, torch.Tensor],
    source: str,
    target: str,
    renames: dict[str, str],
    layers: int,
    projection: tuple[str, str],
) -> dict[str, torch.Tensor]:
    """One tower: ``source + old`` keys renamed to ``target + new``, its resblocks, and its
    projection, which OpenAI applies as ``x @ P`` and a Linear layer as ``x @ W.T``."""
    out = {f"{target}{new}": state_dict[f"{source}{old}"] for old, new in renames.items()}
    out.update(
        resblocks_to_transformers(state_dict, f"{source}transformer.resblocks.", f"{target}encoder.layers.", layers)
    )
    old_projection, new_projection = projection
    out[new_projection] = state_dict[f"{source}{old_projection}"].t().contiguous()
    return out


def _layer_norm_renames(old: str, new: str) -> dict[str, str]:
    return {f"{old}.{kind}": f"{new}.{kind}" for kind in ("weight", "bias")}


def _resblock_shapes(prefix: str, layers: int, width: int, mlp_width: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(layers):
        b = f"{prefix}{i}."
        shapes.update(
            {
                f"{b}ln_1.weight": (width,),
                f"{b}ln_1.bias": (width,),
                f"{b}attn.in_proj_weight": (3 * width, width),
                f"{b}attn.in_proj_bias": (3 * width,),
                f"{b}attn.out_proj.weight": (width, width),
                f"{b}attn.out_proj.bias": (width,),
                f"{b}ln_2.weight": (width,),
                f"{b}ln_2.bias": (width,),
                f"{b}mlp.c_fc.weight": (mlp_width, width),
                f"{b}mlp.c_fc.bias": (mlp_width,),
                f"{b}mlp.c_proj.weight": (width, mlp_width),
                f"{b}mlp.c_proj.bias": (width,),
            }
        )
    return shapes


def _count_blocks(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    """One more than the highest block index, so a gap shows up as missing keys."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = [int(m.group(1)) for key in state_dict if (m := pattern.match(key))]
    if not indices:
        raise CheckpointError(
            f"no '{prefix}N.*' keys: the checkpoint has no transformer blocks. "
            "Fix: use a complete OpenAI-layout CLIP / Long-CLIP checkpoint."
        )
    return max(indices) + 1


def _heads(width: int, num_heads: int | None, tower: str) -> int:
    heads = num_heads if num_heads is not None else width // HEAD_WIDTH
    if heads < 1 or width % heads:
        raise CheckpointError(
            f"the {tower} tower is {width} wide, which does not split into "
            f"{'heads of 64' if num_heads is None else f'{heads} heads'}; "
            "the head count is not stored in the checkpoint. Fix: pass num_heads= a divisor of the width."
        )
    return heads


def _require_clip(state_dict: dict[str, torch.Tensor], prefix: str) -> None:
    anchor = f"{prefix}token_embedding.weight"
    if anchor in state_dict:
        return
    sample = ", ".join(repr(k) for k in list(state_dict)[:5]) or "none"
    hint = (
        " It looks like a transformers CLIP model's weights file already. Fix: pass the folder "
        "holding it with its config.json (load_text_encoder, CLIPModel.from_pretrained)."
        if any(k.startswith(("text_model.", "vision_model.")) for k in state_dict)
        else " Fix: pass a Long-CLIP / OpenAI CLIP checkpoint (e.g. longclip-L.pt)."
    )
    raise CheckpointError(f"not an OpenAI-layout CLIP state dict: no '{anchor}' key (first keys: {sample}).{hint}")


def _required(state_dict: dict[str, torch.Tensor], key: str, ndim: int) -> torch.Tensor:
    tensor = state_dict.get(key)
    if tensor is None:
        raise CheckpointError(
            f"missing key '{key}', needed to read the model's sizes. "
            "Fix: use a complete OpenAI-layout CLIP / Long-CLIP checkpoint."
        )
    if tensor.ndim != ndim:
        raise CheckpointError(
            f"inconsistent shapes: '{key}' is {list(tensor.shape)}, expected {ndim} dimensions. "
            "Fix: use an unmodified OpenAI-layout CLIP / Long-CLIP checkpoint."
        )
    return tensor


def _listing(items: list[str], quote: bool = True, limit: int = 8) -> str:
    shown = [f"'{i}'" if quote else i for i in items[:limit]]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(shown) + more
