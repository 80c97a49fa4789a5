"""An independent TULIP text forward in plain torch, written from the paper, for the tests.

TULIP paper section 3.2 and docs/tulip.md: OpenAI CLIP's text tower (docs/checkpoint-format.md:
packed q/k/v ``in_proj``, pre-LayerNorm blocks, causal attention, ``ln_final``, pooling
at the EOT token, ``x @ text_projection``) with no position table, and RoFormer's rotation of
queries and keys: feature pair ``(2i, 2i+1)`` of a head at position ``m`` is multiplied, as a
complex number, by ``exp(1j * m * base ** (-2i / d))``. Deliberately written with complex
arithmetic on the open_clip state dict, sharing no code with the library.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _rotate(x: torch.Tensor, base: float) -> torch.Tensor:
    """x: [batch, heads, length, d] -> the same, each interleaved pair turned as a complex number."""
    length, d = x.shape[-2], x.shape[-1]
    frequencies = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * frequencies[None, :]
    turn = torch.polar(torch.ones_like(angles), angles).to(torch.complex64)
    as_complex = torch.view_as_complex(x.float().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(as_complex * turn).reshape(x.shape)


def reference_text_forward(
    state: dict[str, torch.Tensor],
    input_ids: torch.Tensor,
    heads: int,
    eos_token_id: int,
    base: float = 10000.0,
    activation: str = "gelu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(last hidden state after ln_final, pooled at the first EOT, projected pooled)."""
    x = state["token_embedding.weight"][input_ids].float()
    batch, length, width = x.shape
    d = width // heads
    causal = torch.full((length, length), float("-inf")).triu(1)
    layers = sorted({int(k.split(".")[2]) for k in state if k.startswith("transformer.resblocks.")})
    for i in layers:
        p = f"transformer.resblocks.{i}."
        h = F.layer_norm(x, (width,), state[p + "ln_1.weight"], state[p + "ln_1.bias"], 1e-5)
        qkv = h @ state[p + "attn.in_proj_weight"].T + state[p + "attn.in_proj_bias"]
        q, k, v = (t.reshape(batch, length, heads, d).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
        q, k = _rotate(q, base), _rotate(k, base)
        scores = q @ k.transpose(-1, -2) / d**0.5 + causal
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width)
        x = x + context @ state[p + "attn.out_proj.weight"].T + state[p + "attn.out_proj.bias"]
        h = F.layer_norm(x, (width,), state[p + "ln_2.weight"], state[p + "ln_2.bias"], 1e-5)
        h = h @ state[p + "mlp.c_fc.weight"].T + state[p + "mlp.c_fc.bias"]
        h = F.gelu(h) if activation == "gelu" else h * torch.sigmoid(1.702 * h)
        x = x + h @ state[p + "mlp.c_proj.weight"].T + state[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (width,), state["ln_final.weight"], state["ln_final.bias"], 1e-5)
    eot = (input_ids == eos_token_id).int().argmax(dim=-1)
    pooled = x[torch.arange(batch), eot]
    return x, pooled, pooled @ state["text_projection"]
