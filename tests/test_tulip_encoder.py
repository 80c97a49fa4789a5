"""The TULIP RoPE text encoder: exact against a reference written from the paper, RoPE and NTK
maths, CLIPTextModel's interface, any length, save/load and the Auto classes."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding
from tulip_reference import reference_text_forward

from longclip_diffusers import (
    TulipTextConfig,
    TulipTextModel,
    TulipTextModelWithProjection,
    ntk_scaled_base,
    set_context_length,
)
from longclip_diffusers.compat import text_transformer
from longclip_diffusers.conversion.tulip_checkpoint import convert_tulip_checkpoint
from longclip_diffusers.tiny import tiny_clip_tokenizer, tiny_tulip_state_dict
from longclip_diffusers.tulip.rope import apply_rotary, rotary_tables


@pytest.fixture(scope="module")
def ids():
    tokenizer = tiny_clip_tokenizer()
    return tokenizer.bos_token_id, tokenizer.eos_token_id


def _random_ids(length: int, ids: tuple[int, int], eot_at: tuple[int, int], seed: int = 0) -> torch.Tensor:
    bos, eos = ids
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, bos, (2, length), generator=generator)
    tokens[:, 0] = bos
    for row, position in enumerate(eot_at):
        tokens[row, position] = eos
    return tokens


def _tulip(ids, kind="text_with_projection", **kwargs):
    state = tiny_tulip_state_dict(**{k: v for k, v in kwargs.items() if k in ("width", "layers", "seed")})
    options = {k: v for k, v in kwargs.items() if k in ("num_heads", "hidden_act")}
    model = convert_tulip_checkpoint(state, kind, bos_token_id=ids[0], eos_token_id=ids[1], **options)
    return state, model


@pytest.mark.parametrize("length", [77, 248, 300])
@pytest.mark.parametrize(
    "variant",
    [{}, {"num_heads": 2, "width": 128}, {"hidden_act": "quick_gelu"}],
    ids=["1-head-gelu", "2-heads", "quick-gelu"],
)
def test_converted_encoder_matches_the_paper_reference(ids, length, variant):
    state, model = _tulip(ids, **variant)
    tokens = _random_ids(length, ids, eot_at=(length // 2, length - 1))
    hidden, pooled, projected = reference_text_forward(
        state,
        tokens,
        heads=variant.get("num_heads", 1),
        eos_token_id=ids[1],
        activation=variant.get("hidden_act", "gelu"),
    )
    with torch.no_grad():
        out = model(tokens)
    assert hidden.abs().mean() > 0.1  # the reference is not degenerate
    torch.testing.assert_close(out.last_hidden_state, hidden, atol=5e-5, rtol=1e-4)
    torch.testing.assert_close(out.text_embeds, projected, atol=5e-5, rtol=1e-4)
    torch.testing.assert_close(model.text_model(tokens).pooler_output, pooled, atol=5e-5, rtol=1e-4)


def test_ntk_base_matches_the_hand_computed_value():
    # alpha = 8, 248 -> 496 tokens, head dim 64: 10000 * (8 * 2 - 7) ** (64 / 62) = 10000 * 9 ** 1.03226
    assert ntk_scaled_base(10000.0, 8.0, 496, 248, 64) == pytest.approx(96610.5436, rel=1e-8)
    assert ntk_scaled_base(10000.0, 8.0, 248, 248, 64) == 10000.0
    with pytest.raises(ValueError, match="extends a context"):
        ntk_scaled_base(10000.0, 8.0, 77, 248, 64)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(64), torch.randn(64)

    def score(m: int, n: int) -> torch.Tensor:
        cos, sin = rotary_tables(torch.tensor([m, n]), 64)
        rotated = apply_rotary(torch.stack([q, k]), cos, sin)
        return rotated[0] @ rotated[1]

    torch.testing.assert_close(score(5, 2), score(105, 102), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(score(5, 2), score(5, 4), rtol=1e-3)


def test_rotation_pairs_are_interleaved():
    cos, sin = rotary_tables(torch.tensor([1]), 4, base=10000.0)
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    # feature 0 turns by 1 radian into the plane of feature 1 (its pair), not feature 2
    torch.testing.assert_close(apply_rotary(x, cos, sin), torch.tensor([[math.cos(1), math.sin(1), 0.0, 0.0]]))


def test_set_context_length_with_ntk_rescales_the_rope_base_from_the_trained_length(ids, tmp_path):
    _, model = _tulip(ids)
    assert model.config.trained_length == 248
    tokens = _random_ids(300, ids, eot_at=(150, 299))
    with torch.no_grad():
        before = model(tokens).text_embeds
        set_context_length(model, 300)
        assert model.config.max_position_embeddings == 300
        torch.testing.assert_close(model(tokens).text_embeds, before)
        # saved at 300 and read back: the length it was trained at is still 248
        model.save_pretrained(tmp_path / "at-300")
        model = TulipTextModelWithProjection.from_pretrained(tmp_path / "at-300")
        set_context_length(model, 496, ntk_alpha=8.0)
        after = model(tokens).text_embeds
    assert model.config.ntk_original_length == model.config.trained_length == 248
    expected = ntk_scaled_base(10000.0, 8.0, 496, 248, model.config.head_dim)
    assert model.config.rope_base == pytest.approx(expected)
    assert not torch.allclose(after, before, atol=1e-4)


def test_a_model_without_a_recorded_trained_length_keeps_the_one_before_its_first_change():
    model = TulipTextModel(
        TulipTextConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=50,
            max_position_embeddings=248,
        )
    )
    assert model.config.trained_length is None
    set_context_length(model, 300)
    set_context_length(model, 496, ntk_alpha=8.0)
    assert model.config.ntk_original_length == model.config.trained_length == 248


def test_tokens_after_the_first_eot_do_not_change_the_pooled_output(ids):
    _, model = _tulip(ids)
    tokens = _random_ids(120, ids, eot_at=(40, 40))
    changed = tokens.clone()
    changed[:, 60:] = (changed[:, 60:] + 1) % ids[0]
    with torch.no_grad():
        torch.testing.assert_close(model(changed).text_embeds, model(tokens).text_embeds)


def test_padding_mask_leaves_real_tokens_unchanged(ids):
    _, model = _tulip(ids)
    tokens = _random_ids(30, ids, eot_at=(29, 29))[:1]
    padded = torch.cat([tokens, torch.full((1, 10), ids[1])], dim=1)
    mask = torch.cat([torch.ones(1, 30), torch.zeros(1, 10)], dim=1).long()
    with torch.no_grad():
        plain = model(tokens).last_hidden_state
        masked = model(padded, attention_mask=mask).last_hidden_state[:, :30]
    torch.testing.assert_close(masked, plain, atol=1e-5, rtol=1e-5)


def test_outputs_follow_clip_text_model(ids):
    _, model = _tulip(ids, layers=3)
    tokens = _random_ids(50, ids, eot_at=(20, 49))
    with torch.no_grad():
        out = model(tokens, output_hidden_states=True, output_attentions=True)
        plain = model(tokens)
        as_tuple = model(tokens, return_dict=False)
    # embeddings + one per layer, the last before the final LayerNorm
    assert len(out.hidden_states) == 4
    torch.testing.assert_close(model.text_model.final_layer_norm(out.hidden_states[-1]), out.last_hidden_state)
    assert len(out.attentions) == 3 and out.attentions[0].shape == (2, 1, 50, 50)
    torch.testing.assert_close(out.text_embeds, plain.text_embeds, atol=1e-5, rtol=1e-5)
    assert torch.equal(as_tuple[0], plain.text_embeds)
    assert out[0].ndim == 2  # what SDXL's encode_prompt checks before taking it as pooled


def test_module_tree_mirrors_clip_for_lora_and_compat(ids):
    _, model = _tulip(ids)
    names = {name for name, _ in model.named_modules()}
    for part in ("q_proj", "k_proj", "v_proj", "out_proj", "mlp.fc1", "mlp.fc2", "layer_norm1"):
        assert f"text_model.encoder.layers.0.self_attn.{part}" in names or (
            f"text_model.encoder.layers.0.{part}" in names
        )
    assert text_transformer(model) is model.text_model
    assert model.get_input_embeddings() is model.text_model.embeddings.token_embedding
    assert not any("position" in name for name, _ in model.named_parameters())
    assert model.dtype == torch.float32


def test_save_load_round_trip_through_auto_classes(ids, tmp_path):
    _, model = _tulip(ids)
    tokens = _random_ids(260, ids, eot_at=(100, 259))
    model.save_pretrained(tmp_path / "tulip")
    assert (tmp_path / "tulip" / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(tmp_path / "tulip")
    assert isinstance(config, TulipTextConfig) and config.model_type == "tulip_text"
    with_projection = AutoModelForTextEncoding.from_pretrained(tmp_path / "tulip")
    bare = AutoModel.from_pretrained(tmp_path / "tulip")
    assert isinstance(with_projection, TulipTextModelWithProjection)
    assert isinstance(bare, TulipTextModel)
    with torch.no_grad():
        torch.testing.assert_close(with_projection(tokens).text_embeds, model(tokens).text_embeds)
        torch.testing.assert_close(bare(tokens).last_hidden_state, model(tokens).last_hidden_state)


def test_half_precision_load_keeps_rotations_exact(ids, tmp_path):
    _, model = _tulip(ids)
    model.save_pretrained(tmp_path / "tulip")
    half = TulipTextModelWithProjection.from_pretrained(tmp_path / "tulip", dtype=torch.bfloat16)
    tokens = _random_ids(100, ids, eot_at=(50, 99))
    with torch.no_grad():
        out = half(tokens).text_embeds
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), model(tokens).text_embeds, atol=0.1, rtol=0.05)


def test_bad_configs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        TulipTextConfig(hidden_size=64, num_attention_heads=3)
    with pytest.raises(ValueError, match="even head size"):
        TulipTextConfig(hidden_size=63, num_attention_heads=7)
    with pytest.raises(ValueError, match="go together"):
        TulipTextConfig(ntk_alpha=8.0)


def test_gradient_checkpointing_gives_the_same_gradients(ids):
    _, model = _tulip(ids)
    tokens = _random_ids(40, ids, eot_at=(39, 39))
    model.train()

    def gradient():
        model.zero_grad()
        model(tokens).text_embeds.square().sum().backward()
        return model.text_model.encoder.layers[0].self_attn.q_proj.weight.grad.clone()

    plain = gradient()
    model.gradient_checkpointing_enable()
    torch.testing.assert_close(gradient(), plain)
