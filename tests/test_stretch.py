"""Knowledge-preserved stretching: the released rule, row by row, and at model level."""

from __future__ import annotations

import pytest
import torch

from longclip_diffusers import (
    IncompatibleEncoderError,
    InvalidArgumentError,
    convert_tulip_checkpoint,
    fit_encoder_length,
    stretch_plan,
    stretch_position_table,
    stretch_text_encoder,
    stretched_length,
)
from longclip_diffusers.compat import text_transformer
from longclip_diffusers.tiny import tiny_clip_model, tiny_clip_tokenizer, tiny_text_encoder, tiny_tulip_state_dict


@pytest.fixture
def table():
    torch.manual_seed(1)
    return torch.randn(77, 16)


def test_default_stretch_turns_77_rows_into_248(table):
    assert stretched_length(77) == 248
    assert stretch_position_table(table).shape == (248, 16)


def test_first_20_rows_are_kept_exactly(table):
    assert torch.equal(stretch_position_table(table)[:20], table[:20])


def test_whole_source_positions_are_copied_exactly(table):
    new = stretch_position_table(table)
    assert torch.equal(new[24], table[21])
    assert torch.equal(new[244], table[76])


def test_rows_between_source_positions_interpolate_linearly(table):
    new = stretch_position_table(table)
    # row 22 reads source position 20.5
    torch.testing.assert_close(new[22], 0.5 * table[20] + 0.5 * table[21])
    torch.testing.assert_close(new[21], 0.75 * table[20] + 0.25 * table[21])


def test_last_three_rows_extrapolate_the_last_segment(table):
    new = stretch_position_table(table)
    step = table[76] - table[75]
    for row, s in zip((245, 246, 247), (76.25, 76.5, 76.75)):
        torch.testing.assert_close(new[row], table[76] + (s - 76) * step)


def test_keep_zero_is_plain_interpolation(table):
    new = stretch_position_table(table, keep=0, ratio=3.0)
    assert new.shape[0] == 231
    assert torch.equal(new[0], table[0])
    assert torch.equal(new[3], table[1])
    torch.testing.assert_close(new[1], table[0] + (table[1] - table[0]) / 3)


def test_explicit_length_extends_past_the_default():
    table = torch.arange(10, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    new = stretch_position_table(table, keep=0, ratio=2.0, length=25)
    assert new.shape[0] == 25
    torch.testing.assert_close(new[:, 0], torch.arange(25, dtype=torch.float32) / 2)


def test_half_precision_table_keeps_its_dtype_and_uses_float32_maths(table):
    half = table.to(torch.float16)
    new = stretch_position_table(half)
    assert new.dtype == torch.float16
    expected = stretch_position_table(half.float()).half()
    assert torch.equal(new, expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(keep=80), "keep=80"),
        (dict(ratio=0.0), "ratio"),
        (dict(keep=20, ratio=1.5), "not a whole number"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(table, kwargs, message):
    with pytest.raises(ValueError, match=message):
        stretch_position_table(table, **kwargs)


def _pooled(model, input_ids):
    """pooler_output of a CLIPTextModel, text_embeds (projected pooled) of a WithProjection."""
    with torch.no_grad():
        output = model(input_ids=input_ids)
    return output.text_embeds if hasattr(output, "text_embeds") else output.pooler_output


@pytest.mark.parametrize("with_projection", [False, True])
def test_model_stretch_updates_table_buffer_and_config(with_projection):
    model = tiny_text_encoder(with_projection)
    old = text_transformer(model).embeddings.position_embedding.weight.detach().clone()
    stretch_text_encoder(model)
    embeddings = text_transformer(model).embeddings
    assert embeddings.position_embedding.weight.shape == (248, 32)
    assert torch.equal(embeddings.position_embedding.weight[:20], old[:20])
    assert torch.equal(embeddings.position_ids, torch.arange(248).unsqueeze(0))
    assert model.config.max_position_embeddings == 248


@pytest.mark.parametrize("with_projection", [False, True])
def test_short_prompt_pooled_output_is_unchanged_by_stretching(with_projection):
    tokenizer = tiny_clip_tokenizer()
    model = tiny_text_encoder(with_projection)
    ids = tokenizer(
        "a red cat sits on the golden table with a blue hat near the old tree",
        padding="max_length",
        max_length=77,
        return_tensors="pt",
    ).input_ids
    assert int((ids != tokenizer.pad_token_id).sum()) <= 20
    before = _pooled(model, ids)
    stretch_text_encoder(model)
    torch.testing.assert_close(_pooled(model, ids), before, rtol=0, atol=1e-6)


def test_long_prompt_runs_past_77_tokens_after_stretching(tokenizer, long_prompt):
    model = stretch_text_encoder(tiny_text_encoder())
    ids = tokenizer(long_prompt, truncation=True, max_length=248, return_tensors="pt").input_ids
    assert ids.shape[1] > 77
    assert model(input_ids=ids).last_hidden_state.shape == (1, ids.shape[1], 32)


@pytest.mark.parametrize("keep, ratio", [(77, 4.0), (1, 0.5)])
def test_a_keep_or_ratio_that_would_not_lengthen_the_table_is_refused_and_changes_nothing(keep, ratio):
    model = tiny_text_encoder()
    table = model.embeddings.position_embedding
    with pytest.raises(InvalidArgumentError, match="nothing would be stretched"):
        stretch_text_encoder(model, keep=keep, ratio=ratio)
    assert model.embeddings.position_embedding is table
    assert model.config.max_position_embeddings == 77


def test_ratio_1_keeps_the_table_as_it_is():
    model = tiny_text_encoder()
    before = model.embeddings.position_embedding.weight.detach().clone()
    stretch_text_encoder(model, ratio=1.0)
    assert torch.equal(model.embeddings.position_embedding.weight, before)


def test_stretch_keeps_dtype_device_and_trainability():
    model = tiny_text_encoder().to(torch.bfloat16)
    stretch_text_encoder(model)
    weight = model.embeddings.position_embedding.weight
    assert weight.dtype == torch.bfloat16
    assert weight.device.type == "cpu"
    assert weight.requires_grad


def test_stretch_of_full_clip_model_changes_text_side_only():
    model = tiny_clip_model()
    vision_before = model.vision_model.embeddings.position_embedding.weight.clone()
    stretch_text_encoder(model)
    assert model.text_model.embeddings.position_embedding.weight.shape[0] == 248
    assert model.config.text_config.max_position_embeddings == 248
    assert torch.equal(model.vision_model.embeddings.position_embedding.weight, vision_before)


def test_stretch_works_at_bigG_width_heads_and_mlp():
    """OpenCLIP ViT-bigG/14 text tower shape (SDXL text_encoder_2), with 2 of its 32 layers."""
    tokenizer = tiny_clip_tokenizer()
    model = tiny_text_encoder(
        True, tokenizer=tokenizer, hidden_size=1280, num_heads=20, num_layers=2, projection_dim=1280
    )
    assert model.config.intermediate_size == 5120
    ids = tokenizer("a small red boat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    before = _pooled(model, ids)
    stretch_text_encoder(model)
    assert model.text_model.embeddings.position_embedding.weight.shape == (248, 1280)
    torch.testing.assert_close(_pooled(model, ids), before, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "length, ratio, expected",
    [(248, None, (4.0, 248)), (200, None, (4.0, 248)), (300, None, (280 / 57, 300)), (300, 6.0, (6.0, 362))],
)
def test_stretch_plan_takes_4_or_fits_the_length_exactly(length, ratio, expected):
    assert stretch_plan(77, length, ratio=ratio) == pytest.approx(expected)


def test_stretch_plan_refuses_a_given_ratio_that_falls_short():
    with pytest.raises(IncompatibleEncoderError, match="gives 248, fewer than the 300 tokens"):
        stretch_plan(77, 300, ratio=4.0)


def test_fractional_length_error_asks_for_other_keep_or_ratio():
    with pytest.raises(ValueError, match="pick keep/ratio that give a whole number of rows"):
        stretched_length(77, 20, 4.1)


def test_fit_encoder_length_stretches_a_twin_and_leaves_the_original():
    model = tiny_text_encoder()
    fitted = fit_encoder_length(model, 300)
    assert fitted is not model
    assert text_transformer(fitted).embeddings.position_embedding.num_embeddings == 300
    assert text_transformer(model).embeddings.position_embedding.num_embeddings == 77
    assert fit_encoder_length(fitted, 248) is fitted


def test_stretching_a_rotary_tulip_encoder_says_to_set_its_length():
    tokenizer = tiny_clip_tokenizer()
    tulip = convert_tulip_checkpoint(
        tiny_tulip_state_dict(), kind="text", bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    with pytest.raises(IncompatibleEncoderError, match=r"rotary positions.*set_context_length\(encoder, N\)"):
        stretch_text_encoder(tulip)
