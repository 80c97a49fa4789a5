"""Released TULIP checkpoints (open_clip layout, no text position table) to TULIP models:
through convert_tulip_checkpoint, convert_checkpoint, the convert CLI and load_text_encoder."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel, CLIPModel
from tulip_reference import reference_text_forward

from longclip_diffusers import (
    CheckpointError,
    TulipModel,
    TulipTextModel,
    TulipTextModelWithProjection,
    convert_checkpoint,
    convert_tulip_checkpoint,
    load_clip_model,
    load_text_encoder,
)
from longclip_diffusers.cli.main import main
from longclip_diffusers.tiny import tiny_clip_tokenizer, tiny_openai_state_dict, tiny_tulip_state_dict

TOLERANCE = {"atol": 5e-5, "rtol": 1e-4}


@pytest.fixture(scope="module")
def ids():
    tokenizer = tiny_clip_tokenizer()
    return {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}


@pytest.fixture(scope="module")
def state():
    return tiny_tulip_state_dict(seed=2, with_vision=True)


@pytest.fixture
def tokens(ids):
    rows = torch.randint(0, ids["bos_token_id"], (2, 90), generator=torch.Generator().manual_seed(1))
    rows[:, 0] = ids["bos_token_id"]
    rows[0, 60], rows[1, 89] = ids["eos_token_id"], ids["eos_token_id"]
    return rows


def _expected(state, tokens, ids):
    return reference_text_forward(state, tokens, heads=1, eos_token_id=ids["eos_token_id"])[2]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {
            ("text." + k if not k.startswith("visual.") and k != "logit_scale" else k): v for k, v in sd.items()
        },
    ],
    ids=["bare", "state_dict-module-prefixed", "open_clip-text-tower"],
)
def test_open_clip_layouts_convert_to_the_same_encoder(state, ids, tokens, tmp_path, wrap):
    path = tmp_path / "tulip.pt"
    torch.save(wrap(state), path)
    model = convert_tulip_checkpoint(path, **ids)
    assert isinstance(model, TulipTextModelWithProjection)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens).text_embeds, _expected(state, tokens, ids), **TOLERANCE)


def test_safetensors_file_and_bare_text_model(state, ids, tokens, tmp_path):
    path = tmp_path / "tulip.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = convert_tulip_checkpoint(path, "text", **ids)
    assert isinstance(model, TulipTextModel)
    pooled = reference_text_forward(state, tokens, heads=1, eos_token_id=ids["eos_token_id"])[1]
    with torch.no_grad():
        torch.testing.assert_close(model(tokens).pooler_output, pooled, **TOLERANCE)


def test_full_model_keeps_clip_vision_tower_and_logits(state, ids, tokens):
    model = convert_tulip_checkpoint(state, "full", **ids)
    assert isinstance(model, TulipModel)
    # the same vision weights converted as plain CLIP (a position table added) give the same images
    as_clip = dict(state, positional_embedding=torch.zeros(248, 64))
    clip = convert_checkpoint(as_clip, "full", **ids)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = model.get_image_features(pixel_values=pixels).pooler_output
        texts = model.get_text_features(input_ids=tokens).pooler_output
        logits = model(input_ids=tokens, pixel_values=pixels).logits_per_image
        torch.testing.assert_close(images, clip.get_image_features(pixel_values=pixels).pooler_output)
    torch.testing.assert_close(texts, _expected(state, tokens, ids), **TOLERANCE)
    cosine = torch.nn.functional.normalize(images, dim=-1) @ torch.nn.functional.normalize(texts, dim=-1).T
    torch.testing.assert_close(logits, state["logit_scale"].exp() * cosine, **TOLERANCE)


def test_convert_checkpoint_detects_tulip(state, ids):
    assert isinstance(convert_checkpoint(state, "text", **ids), TulipTextModel)
    assert isinstance(convert_checkpoint(state, "text_with_projection", **ids), TulipTextModelWithProjection)
    assert isinstance(convert_checkpoint(state, "full", **ids), TulipModel)
    assert isinstance(convert_checkpoint(tiny_openai_state_dict(), "full", **ids), CLIPModel)


def test_released_full_checkpoint_with_the_unused_openai_position_table_converts(state, ids, tokens):
    # TULIP's stage-2 script leaves open_clip's 77-row table in the model, unused by the RoPE tower
    leftover = dict(state, positional_embedding=torch.randn(77, 64))
    model = convert_tulip_checkpoint(leftover, "full", **ids)
    with torch.no_grad():
        texts = model.get_text_features(input_ids=tokens).pooler_output
    torch.testing.assert_close(texts, _expected(state, tokens, ids), **TOLERANCE)


def test_checkpoints_that_are_not_tulip_are_refused_with_the_fix(state, ids):
    with pytest.raises(CheckpointError, match="Long-CLIP's two position tables.*convert_checkpoint"):
        convert_tulip_checkpoint(tiny_openai_state_dict(), **ids)
    broken = {k: v for k, v in state.items() if k != "transformer.resblocks.1.ln_2.bias"}
    with pytest.raises(CheckpointError, match="missing keys.*resblocks.1.ln_2.bias"):
        convert_tulip_checkpoint(broken, **ids)
    text_only = {k: v for k, v in state.items() if not k.startswith("visual.") and k != "logit_scale"}
    with pytest.raises(CheckpointError, match="no vision tower.*--text-only"):
        convert_tulip_checkpoint(text_only, "full", **ids)


@pytest.fixture
def tokenizer_dir(tmp_path):
    tiny_clip_tokenizer().save_pretrained(tmp_path / "tokenizer")
    return tmp_path / "tokenizer"


def test_cli_convert_writes_tulip_text_encoder_and_full_model(state, ids, tokens, tmp_path, tokenizer_dir):
    checkpoint = tmp_path / "tulip.pt"
    torch.save(state, checkpoint)
    text_dir, full_dir = tmp_path / "text", tmp_path / "full"
    assert main(["convert", str(checkpoint), str(text_dir), "--text-only", "--tokenizer", str(tokenizer_dir)]) == 0
    assert main(["convert", str(checkpoint), str(full_dir), "--tokenizer", str(tokenizer_dir)]) == 0

    encoder = AutoModel.from_pretrained(text_dir)
    assert isinstance(encoder, TulipTextModel)
    full = load_clip_model(full_dir)
    assert isinstance(full, TulipModel) and (full_dir / "preprocessor_config.json").is_file()
    with torch.no_grad():
        torch.testing.assert_close(
            full.get_text_features(input_ids=tokens).pooler_output, _expected(state, tokens, ids), **TOLERANCE
        )


def test_cli_tulip_flag_converts_a_full_release_that_keeps_the_unused_table(
    state, ids, tokens, tmp_path, tokenizer_dir
):
    leftover = {f"module.{k}": v for k, v in dict(state, positional_embedding=torch.randn(77, 64)).items()}
    torch.save({"epoch": 1, "state_dict": leftover}, tmp_path / "epoch_1.pt")
    out = tmp_path / "tulip"
    assert main(["convert", str(tmp_path / "epoch_1.pt"), str(out), "--tulip", "--tokenizer", str(tokenizer_dir)]) == 0
    model = load_clip_model(out)
    assert isinstance(model, TulipModel)
    with torch.no_grad():
        texts = model.get_text_features(input_ids=tokens).pooler_output
    torch.testing.assert_close(texts, _expected(state, tokens, ids), **TOLERANCE)


def test_load_text_encoder_takes_a_tulip_file_and_folders(state, ids, tokens, tmp_path, tokenizer_dir):
    # a file carries no tokenizer, so it is converted with CLIP's special ids: a full-size vocabulary
    full_vocabulary = tiny_tulip_state_dict(seed=4, vocab_size=49408)
    checkpoint = tmp_path / "tulip-clip-vocab.pt"
    torch.save(full_vocabulary, checkpoint)
    from_file = load_text_encoder(checkpoint, with_projection=True, cache_dir=tmp_path / "cache")
    assert isinstance(from_file, TulipTextModelWithProjection)
    clip_tokens = tokens.clone()
    clip_tokens[tokens == ids["eos_token_id"]] = 49407
    with torch.no_grad():
        expected = reference_text_forward(full_vocabulary, clip_tokens, heads=1, eos_token_id=49407)[2]
        torch.testing.assert_close(from_file(clip_tokens).text_embeds, expected, **TOLERANCE)

    torch.save(state, tmp_path / "tulip.pt")
    assert (
        main(["convert", str(tmp_path / "tulip.pt"), str(tmp_path / "full"), "--tokenizer", str(tokenizer_dir)]) == 0
    )
    from_full_folder = load_text_encoder(tmp_path / "full", with_projection=True)
    assert isinstance(load_text_encoder(tmp_path / "full"), TulipTextModel)
    with torch.no_grad():
        torch.testing.assert_close(from_full_folder(tokens).text_embeds, _expected(state, tokens, ids), **TOLERANCE)
