"""The OpenAI CLIP layout: configs inferred from shapes, the key map to transformers, the merged
Long-CLIP position table, and the key/shape checks."""

from __future__ import annotations

import pytest
import torch

from longclip_diffusers import CheckpointError
from longclip_diffusers.conversion.openai_keys import (
    LONGCLIP_MASK_SPLIT,
    check_openai_state_dict,
    has_plain_openai_positions,
    infer_clip_config,
    infer_text_config,
    merged_position_table,
    openai_text_to_transformers,
    openai_to_transformers,
)
from longclip_diffusers.tiny import tiny_openai_state_dict

# (text width, text layers, embed dim, vision width, vision layers, patch, image size)
RELEASED_SHAPES = {
    "B/16": (512, 12, 512, 768, 12, 16, 224),
    "B/32": (512, 12, 512, 768, 12, 32, 224),
    "L/14": (768, 12, 768, 1024, 24, 14, 224),
    "L/14-336": (768, 12, 768, 1024, 24, 14, 336),
}


def _released_shapes_on_meta(name: str) -> dict[str, torch.Tensor]:
    width, layers, embed, vision_width, vision_layers, patch, image = RELEASED_SHAPES[name]
    return tiny_openai_state_dict(
        width=width,
        layers=layers,
        vision_width=vision_width,
        vision_layers=vision_layers,
        patch=patch,
        image_size=image,
        embed_dim=embed,
        vocab_size=49408,
        device="meta",
    )


@pytest.mark.parametrize("name", list(RELEASED_SHAPES))
def test_config_of_released_models_is_inferred_from_shapes(name):
    width, layers, embed, vision_width, vision_layers, patch, image = RELEASED_SHAPES[name]
    config = infer_clip_config(_released_shapes_on_meta(name))
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads) == (
        width,
        layers,
        width // 64,
    )
    assert (text.intermediate_size, text.vocab_size, text.max_position_embeddings) == (4 * width, 49408, 248)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (
        vision_width,
        vision_layers,
        vision_width // 64,
    )
    assert (vision.patch_size, vision.image_size, vision.intermediate_size) == (
        patch,
        image,
        4 * vision_width,
    )
    assert config.projection_dim == text.projection_dim == vision.projection_dim == embed
    assert {text.hidden_act, vision.hidden_act} == {"quick_gelu"}
    assert {text.layer_norm_eps, vision.layer_norm_eps} == {1e-5}
    assert (text.bos_token_id, text.eos_token_id) == (49406, 49407)


def test_l14_has_the_published_head_counts():
    config = infer_clip_config(_released_shapes_on_meta("L/14"))
    assert (config.text_config.num_attention_heads, config.vision_config.num_attention_heads) == (12, 16)


def test_num_heads_overrides_the_width_rule():
    state_dict = tiny_openai_state_dict(width=64, with_vision=False, device="meta", vocab_size=100)
    assert infer_text_config(state_dict, num_heads=4, bos_token_id=98, eos_token_id=99).num_attention_heads == 4


def test_width_that_does_not_split_into_heads_asks_for_num_heads():
    state_dict = tiny_openai_state_dict(width=32, with_vision=False, device="meta", vocab_size=49408)
    with pytest.raises(CheckpointError, match="pass num_heads="):
        infer_text_config(state_dict)
    with pytest.raises(CheckpointError, match="3 heads"):
        infer_text_config(state_dict, num_heads=3)


def test_text_key_map_splits_in_proj_into_q_k_v_and_transposes_the_projection():
    state_dict = tiny_openai_state_dict(with_vision=False, layers=1)
    mapped = openai_text_to_transformers(state_dict)
    packed = state_dict["transformer.resblocks.0.attn.in_proj_weight"]
    bias = state_dict["transformer.resblocks.0.attn.in_proj_bias"]
    layer = "text_model.encoder.layers.0.self_attn."
    for index, name in enumerate(("q_proj", "k_proj", "v_proj")):
        assert torch.equal(mapped[f"{layer}{name}.weight"], packed[index * 64 : (index + 1) * 64])
        assert torch.equal(mapped[f"{layer}{name}.bias"], bias[index * 64 : (index + 1) * 64])
    assert torch.equal(mapped["text_projection.weight"], state_dict["text_projection"].T)
    assert torch.equal(mapped["text_model.final_layer_norm.weight"], state_dict["ln_final.weight"])
    assert torch.equal(
        mapped["text_model.encoder.layers.0.mlp.fc2.weight"],
        state_dict["transformer.resblocks.0.mlp.c_proj.weight"],
    )


def test_full_key_map_gives_exactly_the_clip_model_keys():
    from transformers import CLIPModel

    state_dict = tiny_openai_state_dict(layers=1, vision_layers=1)
    vocab = state_dict["token_embedding.weight"].shape[0]
    config = infer_clip_config(state_dict, bos_token_id=vocab - 2, eos_token_id=vocab - 1)
    mapped = openai_to_transformers(state_dict)
    model_keys = set(CLIPModel(config).state_dict())
    assert set(mapped) == model_keys
    assert torch.equal(mapped["visual_projection.weight"], state_dict["visual.proj"].T)
    assert torch.equal(mapped["vision_model.pre_layrnorm.bias"], state_dict["visual.ln_pre.bias"])
    assert torch.equal(mapped["vision_model.post_layernorm.weight"], state_dict["visual.ln_post.weight"])
    assert torch.equal(mapped["vision_model.embeddings.patch_embedding.weight"], state_dict["visual.conv1.weight"])
    assert torch.equal(mapped["logit_scale"], state_dict["logit_scale"])


def test_merged_table_takes_the_first_20_rows_from_the_frozen_table():
    state_dict = tiny_openai_state_dict(with_vision=False, layers=1)
    merged = merged_position_table(state_dict)
    assert LONGCLIP_MASK_SPLIT == 20
    assert torch.equal(merged[:20], state_dict["positional_embedding"][:20])
    assert torch.equal(merged[20:], state_dict["positional_embedding_res"][20:])
    assert not torch.equal(merged[20:], state_dict["positional_embedding"][20:])


def test_only_a_single_77_row_table_counts_as_plain_openai():
    assert has_plain_openai_positions(tiny_openai_state_dict(context=77, two_position_tables=False, device="meta"))
    assert not has_plain_openai_positions(tiny_openai_state_dict(context=77, device="meta"))
    assert not has_plain_openai_positions(
        tiny_openai_state_dict(context=248, two_position_tables=False, device="meta")
    )


def test_prefixed_text_tower_maps_like_an_unprefixed_one():
    state_dict = tiny_openai_state_dict(with_vision=False, layers=1)
    prefixed = {f"text.{key}": value for key, value in state_dict.items()}
    plain, mapped = openai_text_to_transformers(state_dict), openai_text_to_transformers(prefixed, prefix="text.")
    assert plain.keys() == mapped.keys()
    assert all(torch.equal(plain[key], mapped[key]) for key in plain)


def test_openai_jit_bookkeeping_keys_are_ignored():
    state_dict = tiny_openai_state_dict(device="meta")
    state_dict.update({key: torch.tensor(1) for key in ("input_resolution", "context_length", "vocab_size")})
    check_openai_state_dict(state_dict)


def test_text_check_ignores_the_vision_tower_but_full_check_requires_it():
    full = tiny_openai_state_dict(device="meta")
    check_openai_state_dict(full, vision=False)
    text_only = tiny_openai_state_dict(with_vision=False, device="meta")
    with pytest.raises(CheckpointError, match="no vision tower"):
        check_openai_state_dict(text_only, vision=True)
