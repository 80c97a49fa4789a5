"""Conversion of OpenAI-layout (Long-CLIP) checkpoints: the converted transformers models compute
exactly what the checkpoint's own forward pass computes (tests/openai_reference.py)."""

from __future__ import annotations

import pytest
import torch
from openai_reference import image_features, logits_per_image, text_features
from safetensors.torch import save_file
from transformers import CLIPModel, CLIPTextModel, CLIPTextModelWithProjection

from longclip_diffusers import CheckpointError, convert_checkpoint, read_state_dict, stretch_position_table
from longclip_diffusers.compat import text_transformer
from longclip_diffusers.tiny import tiny_openai_state_dict

TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def _ids_for(state_dict) -> dict[str, int]:
    # the tiny vocabulary ends with BOS, EOT as OpenAI's does
    vocab = state_dict["token_embedding.weight"].shape[0]
    return {"bos_token_id": vocab - 2, "eos_token_id": vocab - 1}


def _long_prompt_ids(state_dict, length: int = 40, eot_at=(33, 39)) -> torch.Tensor:
    """Token rows longer than 20 tokens: BOS, random words, EOT (the largest id), then padding."""
    ids = _ids_for(state_dict)
    generator = torch.Generator().manual_seed(3)
    rows = torch.randint(0, ids["bos_token_id"], (len(eot_at), length), generator=generator)
    rows[:, 0] = ids["bos_token_id"]
    for row, eot in enumerate(eot_at):
        rows[row, eot] = ids["eos_token_id"]
    return rows


@pytest.fixture(scope="module")
def longclip_state_dict():
    state_dict = tiny_openai_state_dict(seed=5)
    # the two tables must differ for the test to notice a converter that drops one
    assert not torch.allclose(state_dict["positional_embedding"], state_dict["positional_embedding_res"])
    return state_dict


@pytest.fixture
def pixels():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize(
    ("kind", "cls", "output", "reference"),
    [
        ("text", CLIPTextModel, "pooler_output", "pooled"),
        ("text_with_projection", CLIPTextModelWithProjection, "text_embeds", "text_embeds"),
    ],
)
def test_converted_text_models_match_the_reference_forward(longclip_state_dict, kind, cls, output, reference):
    model = convert_checkpoint(longclip_state_dict, kind=kind, **_ids_for(longclip_state_dict))
    ids = _long_prompt_ids(longclip_state_dict)
    expected = text_features(longclip_state_dict, ids, num_heads=1)
    with torch.no_grad():
        out = model(input_ids=ids)
    assert type(model) is cls
    torch.testing.assert_close(out.last_hidden_state, expected["last_hidden_state"], **TOLERANCE)
    torch.testing.assert_close(getattr(out, output), expected[reference], **TOLERANCE)


def test_converted_clip_model_matches_the_reference_forward(longclip_state_dict, pixels):
    model = convert_checkpoint(longclip_state_dict, kind="full", **_ids_for(longclip_state_dict))
    ids = _long_prompt_ids(longclip_state_dict)
    text = text_features(longclip_state_dict, ids, num_heads=1)
    image = image_features(longclip_state_dict, pixels, num_heads=1)
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=pixels)
        text_tower = model.text_model(input_ids=ids)
        vision_tower = model.vision_model(pixel_values=pixels)
    assert type(model) is CLIPModel
    torch.testing.assert_close(text_tower.last_hidden_state, text["last_hidden_state"], **TOLERANCE)
    torch.testing.assert_close(text_tower.pooler_output, text["pooled"], **TOLERANCE)
    torch.testing.assert_close(vision_tower.pooler_output, image["pooled"], **TOLERANCE)
    # transformers 5 reports the projected features as the towers' pooler_output in CLIPModel
    torch.testing.assert_close(out.text_model_output.pooler_output, text["text_embeds"], **TOLERANCE)
    torch.testing.assert_close(out.vision_model_output.pooler_output, image["image_embeds"], **TOLERANCE)
    torch.testing.assert_close(out.text_embeds, _normalised(text["text_embeds"]), **TOLERANCE)
    torch.testing.assert_close(out.image_embeds, _normalised(image["image_embeds"]), **TOLERANCE)
    torch.testing.assert_close(
        out.logits_per_image, logits_per_image(longclip_state_dict, ids, pixels, num_heads=1), **TOLERANCE
    )


@pytest.mark.parametrize(
    ("width", "num_heads", "heads_in_reference"),
    [(128, None, 2), (64, 4, 4)],
    ids=["heads-from-width-128", "explicit-num-heads"],
)
def test_multi_head_split_matches_the_reference(width, num_heads, heads_in_reference, pixels):
    state_dict = tiny_openai_state_dict(width=width, vision_width=width, layers=1, vision_layers=1, seed=6)
    model = convert_checkpoint(state_dict, num_heads=num_heads, **_ids_for(state_dict))
    ids = _long_prompt_ids(state_dict)
    assert model.config.text_config.num_attention_heads == heads_in_reference
    assert model.config.vision_config.num_attention_heads == heads_in_reference
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=pixels)
    torch.testing.assert_close(
        out.logits_per_image, logits_per_image(state_dict, ids, pixels, heads_in_reference), **TOLERANCE
    )


def test_position_table_takes_rows_20_on_from_the_second_table(longclip_state_dict):
    model = convert_checkpoint(longclip_state_dict, kind="text", **_ids_for(longclip_state_dict))
    table = text_transformer(model).embeddings.position_embedding.weight
    assert torch.equal(table[:20], longclip_state_dict["positional_embedding"][:20])
    assert torch.equal(table[20:], longclip_state_dict["positional_embedding_res"][20:])


def test_plain_openai_77_positions_are_stretched_to_248():
    state_dict = tiny_openai_state_dict(context=77, two_position_tables=False, seed=7)
    model = convert_checkpoint(state_dict, kind="text_with_projection", **_ids_for(state_dict))
    table = text_transformer(model).embeddings.position_embedding.weight
    assert model.config.max_position_embeddings == 248
    assert text_transformer(model).embeddings.position_ids.shape[-1] == 248
    assert torch.equal(table.detach(), stretch_position_table(state_dict["positional_embedding"]))


def test_stretching_of_a_plain_table_follows_keep_and_ratio():
    state_dict = tiny_openai_state_dict(context=77, two_position_tables=False, seed=7, with_vision=False)
    unchanged = convert_checkpoint(state_dict, kind="text", ratio=1.0, **_ids_for(state_dict))
    baseline = convert_checkpoint(state_dict, kind="text", keep=0, ratio=3.0, **_ids_for(state_dict))
    assert torch.equal(unchanged.embeddings.position_embedding.weight.detach(), state_dict["positional_embedding"])
    assert torch.equal(
        baseline.embeddings.position_embedding.weight.detach(),
        stretch_position_table(state_dict["positional_embedding"], keep=0, ratio=3.0),
    )


def test_long_clip_table_is_not_stretched_again(longclip_state_dict):
    model = convert_checkpoint(longclip_state_dict, kind="text", **_ids_for(longclip_state_dict))
    assert model.config.max_position_embeddings == 248


def test_config_and_model_carry_the_special_token_ids(longclip_state_dict):
    ids = _ids_for(longclip_state_dict)
    model = convert_checkpoint(longclip_state_dict, kind="full", **ids)
    text = model.config.text_config
    assert (text.bos_token_id, text.eos_token_id) == (ids["bos_token_id"], ids["eos_token_id"])
    assert model.text_model.eos_token_id == ids["eos_token_id"]
    assert (text.hidden_act, text.layer_norm_eps) == ("quick_gelu", 1e-5)


def test_clip_token_ids_are_the_default():
    state_dict = tiny_openai_state_dict(vocab_size=49408, layers=1, with_vision=False)
    model = convert_checkpoint(state_dict, kind="text")
    assert (model.config.bos_token_id, model.config.eos_token_id) == (49406, 49407)
    assert model.eos_token_id == 49407


def test_eos_id_outside_the_vocabulary_is_refused(longclip_state_dict):
    with pytest.raises(CheckpointError, match="eos_token_id=49407 is outside"):
        convert_checkpoint(longclip_state_dict, kind="text", bos_token_id=0)


def test_half_precision_checkpoint_becomes_float32_with_the_same_values(longclip_state_dict):
    half = {k: v.half() for k, v in longclip_state_dict.items()}
    model = convert_checkpoint(half, kind="text_with_projection", **_ids_for(longclip_state_dict))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert torch.equal(model.text_projection.weight, half["text_projection"].float().T)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_converts_from_a_file(tmp_path, longclip_state_dict, suffix):
    path = tmp_path / f"longclip{suffix}"
    if suffix == ".pt":
        torch.save(longclip_state_dict, path)
    else:
        save_file(longclip_state_dict, path)
    model = convert_checkpoint(path, kind="text", **_ids_for(longclip_state_dict))
    expected = convert_checkpoint(longclip_state_dict, kind="text", **_ids_for(longclip_state_dict))
    for (name, value), (_, reference) in zip(model.state_dict().items(), expected.state_dict().items()):
        assert torch.equal(value, reference), name


def test_ddp_checkpoint_wrapped_in_a_state_dict_entry_is_unwrapped(tmp_path, longclip_state_dict):
    path = tmp_path / "trained.ckpt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in longclip_state_dict.items()}}, path)
    assert read_state_dict(path).keys() == longclip_state_dict.keys()
    model = convert_checkpoint(path, kind="text", **_ids_for(longclip_state_dict))
    assert torch.equal(model.embeddings.token_embedding.weight, longclip_state_dict["token_embedding.weight"])


def test_model_owns_its_weights_and_can_be_trained(longclip_state_dict):
    model = convert_checkpoint(longclip_state_dict, kind="full", **_ids_for(longclip_state_dict))
    before = longclip_state_dict["token_embedding.weight"].clone()
    with torch.no_grad():
        model.text_model.embeddings.token_embedding.weight.add_(1.0)
    assert torch.equal(longclip_state_dict["token_embedding.weight"], before)
    assert all(p.requires_grad for p in model.parameters())


def test_text_only_checkpoint_converts_to_text_models_but_not_to_clip_model():
    state_dict = tiny_openai_state_dict(with_vision=False, layers=1)
    assert type(convert_checkpoint(state_dict, kind="text", **_ids_for(state_dict))) is CLIPTextModel
    with pytest.raises(CheckpointError, match="no vision tower.*kind='text'"):
        convert_checkpoint(state_dict, kind="full", **_ids_for(state_dict))


def test_unknown_kind_is_refused(longclip_state_dict):
    with pytest.raises(ValueError, match="kind must be one of"):
        convert_checkpoint(longclip_state_dict, kind="vision")


def test_converted_model_is_in_eval_mode(longclip_state_dict):
    assert not convert_checkpoint(longclip_state_dict, kind="text", **_ids_for(longclip_state_dict)).training


def _normalised(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)
