"""TULIP text encoders: CLIP's text transformer with rotary positions instead of a position table.

The module tree and the outputs are those of transformers' ``CLIPTextModel`` /
``CLIPTextModelWithProjection`` (``embeddings.token_embedding``,
``encoder.layers[i].self_attn.{q,k,v,out}_proj``, ``mlp.fc1/fc2``, ``layer_norm1/2``,
``final_layer_norm``, ``text_projection``), so diffusers' ``encode_prompt`` (hidden states,
``text_embeds``, ``dtype``), LoRA on the attention projections, textual inversion and
:func:`longclip_diffusers.compat.text_transformer` treat them like CLIP encoders. What differs
(TULIP paper, section 3.2; docs/tulip.md): no ``position_embedding``, RoPE on queries
and keys in every layer, any input length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.models.clip.modeling_clip import CLIPTextModelOutput

from ..errors import InvalidArgumentError
from .configuration import TulipTextConfig
from .rope import apply_rotary, rotary_tables


class TulipTextEmbeddings(nn.Module):
    """Token embeddings only: positions enter through the rotations in attention."""

    def __init__(self, config: TulipTextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(input_ids)


class TulipAttention(nn.Module):
    """Multi-head self-attention with RoPE applied to the projected queries and keys."""

    def __init__(self, config: TulipTextConfig):
        super().__init__()
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.scale = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        rotary: tuple[torch.Tensor, torch.Tensor],
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``attention_mask`` is a boolean ``[B, 1, L, L]`` (True = may attend) or None for plain
        causal attention."""
        batch, length, _ = hidden_states.shape

        def heads(projection: nn.Linear) -> torch.Tensor:
            return projection(hidden_states).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        cos, sin = rotary
        queries = apply_rotary(heads(self.q_proj), cos, sin)
        keys = apply_rotary(heads(self.k_proj), cos, sin)
        values = heads(self.v_proj)
        dropout = self.dropout if self.training else 0.0

        weights = None
        if output_attentions:
            scores = (queries @ keys.transpose(-1, -2)) * self.scale
            if attention_mask is None:
                attention_mask = torch.ones(length, length, dtype=torch.bool, device=scores.device).tril()
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
            weights = F.dropout(scores.softmax(dim=-1, dtype=torch.float32).to(queries.dtype), dropout, self.training)
            context = weights @ values
        else:
            context = F.scaled_dot_product_attention(
                queries,
                keys,
                values,
                attn_mask=attention_mask,
                dropout_p=dropout,
                is_causal=attention_mask is None,
                scale=self.scale,
            )
        context = context.transpose(1, 2).reshape(batch, length, self.embed_dim)
        return self.out_proj(context), weights


class TulipMLP(nn.Module):
    def __init__(self, config: TulipTextConfig):
        super().__init__()
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class TulipEncoderLayer(GradientCheckpointingLayer):
    """Pre-LayerNorm residual block, as in CLIP."""

    def __init__(self, config: TulipTextConfig):
        super().__init__()
        self.self_attn = TulipAttention(config)
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = TulipMLP(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        rotary: tuple[torch.Tensor, torch.Tensor],
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.self_attn(self.layer_norm1(hidden_states), attention_mask, rotary, output_attentions)
        hidden_states = hidden_states + attended
        hidden_states = hidden_states + self.mlp(self.layer_norm2(hidden_states))
        return hidden_states, weights


class TulipEncoder(nn.Module):
    def __init__(self, config: TulipTextConfig):
        super().__init__()
        self.layers = nn.ModuleList([TulipEncoderLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        rotary: tuple[torch.Tensor, torch.Tensor],
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutput:
        """``hidden_states`` as CLIP's: the embeddings, then each layer's output."""
        all_hidden_states: tuple[torch.Tensor, ...] | None = (hidden_states,) if output_hidden_states else None
        all_attentions: tuple[torch.Tensor, ...] | None = () if output_attentions else None
        for layer in self.layers:
            hidden_states, weights = layer(hidden_states, attention_mask, rotary, output_attentions)
            if all_hidden_states is not None:
                all_hidden_states += (hidden_states,)
            if all_attentions is not None:
                all_attentions += (weights,)
        return BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )


class TulipPreTrainedModel(PreTrainedModel):
    """``save_pretrained`` / ``from_pretrained`` (safetensors), Auto-class hooks and weight
    initialisation (transformers' generic one, normal with ``initializer_range``) shared by the
    TULIP text models."""

    config_class = TulipTextConfig
    # Both models share the ``text_model.`` prefix of CLIPTextModelWithProjection, so either one
    # loads a directory saved from the other.
    base_model_prefix = "text_model"
    # transformers' get/set_input_embeddings find embeddings.token_embedding by this name
    _input_embed_layer = "token_embedding"
    input_modalities = "text"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TulipEncoderLayer"]


class TulipTextModel(TulipPreTrainedModel):
    """The TULIP text transformer without projection; a drop-in for ``CLIPTextModel``."""

    def __init__(self, config: TulipTextConfig):
        super().__init__(config)
        self.embeddings = TulipTextEmbeddings(config)
        self.encoder = TulipEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """Same arguments and outputs as ``CLIPTextModel.forward``; ``input_ids`` may be of any
        length. ``position_ids`` (default ``0 .. L-1``) set the rotation of each token."""
        if input_ids is None:
            raise InvalidArgumentError("You have to specify input_ids")
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict

        input_ids = input_ids.view(-1, input_ids.shape[-1])
        length = input_ids.shape[-1]
        device = input_ids.device
        if position_ids is None:
            position_ids = torch.arange(length, device=device)
        cos, sin = rotary_tables(position_ids, self.config.head_dim, self.config.rope_base)
        # every head rotates by the same angles: computed once, shared through broadcasting
        rotary = (cos.unsqueeze(-3), sin.unsqueeze(-3))
        mask = _attention_mask(attention_mask, length, device)

        encoded = self.encoder(self.embeddings(input_ids), mask, rotary, output_attentions, output_hidden_states)
        last_hidden_state = self.final_layer_norm(encoded.last_hidden_state)
        eos_positions = (input_ids == self.config.eos_token_id).int().argmax(dim=-1)
        pooled = last_hidden_state[torch.arange(last_hidden_state.shape[0], device=device), eos_positions]

        output = BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class TulipTextModelWithProjection(TulipPreTrainedModel):
    """TULIP text transformer plus ``text_projection``; a drop-in for
    ``CLIPTextModelWithProjection`` (e.g. SDXL's ``text_encoder_2``)."""

    def __init__(self, config: TulipTextConfig):
        super().__init__(config)
        self.text_model = TulipTextModel._from_config(config)
        self.text_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CLIPTextModelOutput | tuple:
        """Same arguments and outputs as ``CLIPTextModelWithProjection.forward``
        (``output_hidden_states`` and ``output_attentions`` go to :class:`TulipTextModel`)."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        text_outputs = self.text_model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, return_dict=True, **kwargs
        )
        output = CLIPTextModelOutput(
            text_embeds=self.text_projection(text_outputs.pooler_output),
            last_hidden_state=text_outputs.last_hidden_state,
            hidden_states=text_outputs.hidden_states,
            attentions=text_outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


def _attention_mask(padding_mask: torch.Tensor | None, length: int, device: torch.device) -> torch.Tensor | None:
    """Boolean ``[B, 1, L, L]`` mask (True = may attend): causal, and padded keys hidden.

    Every query also sees itself, so a padded query row is never fully masked (a fully masked
    row makes softmax produce NaN); that row's output is never read.
    """
    if padding_mask is None:
        return None
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    keys = padding_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
    return (causal & keys) | torch.eye(length, dtype=torch.bool, device=device)
