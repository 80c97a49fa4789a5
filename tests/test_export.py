"""Saved encoders: text_model./vision_model. keys on disk, loadable by every CLIP class with the
same outputs, tokenizer at the model's length, image-processor config, dtype option."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from transformers import (
    CLIPModel,
    CLIPProcessor,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from longclip_diffusers import OutputExistsError, save_clip_model, save_text_encoder, stretch_text_encoder
from longclip_diffusers.compat import text_transformer
from longclip_diffusers.tiny import tiny_clip_model, tiny_clip_tokenizer, tiny_text_encoder

IMAGE_SIZE = 32  # tiny_clip_model's default


def disk_keys(directory) -> list[str]:
    with safe_open(str(directory / "model.safetensors"), "pt") as weights:
        return list(weights.keys())


def disk_tensor(directory, key: str) -> torch.Tensor:
    with safe_open(str(directory / "model.safetensors"), "pt") as weights:
        return weights.get_tensor(key)


@pytest.fixture
def input_ids(tokenizer):
    prompts = ["a red cat sits on the old chair", "a dog"]
    return tokenizer(prompts, padding="max_length", return_tensors="pt").input_ids


@pytest.fixture
def pixel_values():
    torch.manual_seed(3)
    return torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_text_encoder_keys_on_disk_carry_the_text_model_prefix(tmp_path):
    model = tiny_text_encoder()
    save_text_encoder(model, tmp_path / "out")
    keys = disk_keys(tmp_path / "out")
    assert "text_model.embeddings.position_embedding.weight" in keys
    assert all(key.startswith("text_model.") for key in keys)
    assert len(keys) == len(model.state_dict())


def test_projection_encoder_keys_on_disk_are_prefixed_plus_the_projection(tmp_path):
    model = tiny_text_encoder(with_projection=True)
    save_text_encoder(model, tmp_path / "out")
    keys = disk_keys(tmp_path / "out")
    assert "text_projection.weight" in keys
    assert all(key.startswith("text_model.") for key in keys if key != "text_projection.weight")


def test_saved_text_encoder_loads_back_with_identical_outputs(tmp_path, input_ids):
    model = tiny_text_encoder()
    save_text_encoder(model, tmp_path / "out")
    loaded = CLIPTextModel.from_pretrained(tmp_path / "out")
    expected, got = model(input_ids), loaded(input_ids)
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(got.pooler_output, expected.pooler_output, rtol=0, atol=0)


def test_saved_projection_encoder_loads_as_both_text_classes(tmp_path, input_ids):
    model = tiny_text_encoder(with_projection=True)
    save_text_encoder(model, tmp_path / "out")
    expected = model(input_ids)
    with_projection = CLIPTextModelWithProjection.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(with_projection(input_ids).text_embeds, expected.text_embeds, rtol=0, atol=0)
    plain = CLIPTextModel.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(plain(input_ids).last_hidden_state, expected.last_hidden_state, rtol=0, atol=0)


def test_saved_clip_model_has_prefixed_keys_and_loads_in_every_clip_class(tmp_path, input_ids, pixel_values):
    model = tiny_clip_model()
    save_clip_model(model, tmp_path / "out")
    keys = disk_keys(tmp_path / "out")
    assert any(key.startswith("text_model.") for key in keys)
    assert any(key.startswith("vision_model.") for key in keys)
    towers = ("text_model.", "vision_model.", "text_projection.", "visual_projection.", "logit_scale")
    assert all(key.startswith(towers) for key in keys)

    expected = model(input_ids=input_ids, pixel_values=pixel_values)
    full = CLIPModel.from_pretrained(tmp_path / "out")(input_ids=input_ids, pixel_values=pixel_values)
    torch.testing.assert_close(full.logits_per_image, expected.logits_per_image, rtol=0, atol=0)
    text = CLIPTextModel.from_pretrained(tmp_path / "out")(input_ids)
    expected_hidden = expected.text_model_output.last_hidden_state
    torch.testing.assert_close(text.last_hidden_state, expected_hidden, rtol=0, atol=0)
    projected = CLIPTextModelWithProjection.from_pretrained(tmp_path / "out")(input_ids)
    torch.testing.assert_close(F.normalize(projected.text_embeds, dim=-1), expected.text_embeds)


def test_tokenizer_is_saved_at_the_model_length_with_its_ids_in_the_config(tmp_path, tokenizer):
    model = stretch_text_encoder(tiny_text_encoder(tokenizer=tokenizer))
    save_text_encoder(model, tmp_path / "out", tokenizer=tokenizer)
    saved = CLIPTokenizer.from_pretrained(tmp_path / "out")
    assert saved.model_max_length == 248
    assert saved.get_vocab() == tokenizer.get_vocab()
    assert tokenizer.model_max_length == 77, "the caller's tokenizer must not change"
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["max_position_embeddings"] == 248
    assert config["architectures"] == ["CLIPTextModel"]
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )


def test_token_ids_of_the_tokenizer_replace_those_in_a_full_model_text_config(tmp_path):
    model = tiny_clip_model()
    model.config.text_config.eos_token_id = 2
    tokenizer = tiny_clip_tokenizer(pad_token="!")
    save_clip_model(model, tmp_path / "out", tokenizer=tokenizer)
    text_config = json.loads((tmp_path / "out" / "config.json").read_text())["text_config"]
    assert text_config["eos_token_id"] == tokenizer.eos_token_id
    assert text_config["pad_token_id"] == tokenizer.convert_tokens_to_ids("!")


def test_full_model_folder_loads_as_a_clip_processor(tmp_path, tokenizer):
    from PIL import Image

    save_clip_model(stretch_text_encoder(tiny_clip_model()), tmp_path / "out", tokenizer=tokenizer)
    processor = CLIPProcessor.from_pretrained(tmp_path / "out")
    assert processor.tokenizer.model_max_length == 248
    settings = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert settings["size"] == {"shortest_edge": IMAGE_SIZE}
    assert settings["crop_size"] == {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    assert settings["image_mean"] == list(OPENAI_CLIP_MEAN) and settings["image_std"] == list(OPENAI_CLIP_STD)
    assert settings["resample"] == Image.Resampling.BICUBIC
    batch = processor(text=["a cat"], images=[Image.new("RGB", (50, 40), "red")], return_tensors="pt")
    assert batch["pixel_values"].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", torch.float16])
def test_dtype_option_sets_the_weights_and_config_dtype(tmp_path, dtype, input_ids):
    model = tiny_text_encoder()
    save_text_encoder(model, tmp_path / "out", torch_dtype=dtype)
    name = str(dtype).removeprefix("torch.")
    assert disk_tensor(tmp_path / "out", "text_model.final_layer_norm.weight").dtype == getattr(torch, name)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == name
    loaded = CLIPTextModel.from_pretrained(tmp_path / "out")
    assert loaded.dtype == getattr(torch, name)
    assert model.dtype == torch.float32, "saving in another dtype must not convert the caller's model"


def test_unknown_dtype_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match="float16"):
        save_text_encoder(tiny_text_encoder(), tmp_path / "out", torch_dtype="int8")
    assert list(tmp_path.iterdir()) == []


def test_tokenizer_bigger_than_the_vocabulary_is_refused_and_nothing_is_written(tmp_path, tokenizer):
    model = tiny_text_encoder(tokenizer=tokenizer)
    model.config.vocab_size = len(tokenizer) - 1
    with pytest.raises(ValueError, match="vocabulary"):
        save_text_encoder(model, tmp_path / "out", tokenizer=tokenizer)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "out"
    save_text_encoder(tiny_text_encoder(seed=1), out)
    with pytest.raises(OutputExistsError):
        save_text_encoder(tiny_text_encoder(seed=2), out)
    save_text_encoder(tiny_text_encoder(seed=2), out, overwrite=True)
    expected = text_transformer(tiny_text_encoder(seed=2)).embeddings.token_embedding.weight
    assert torch.equal(disk_tensor(out, "text_model.embeddings.token_embedding.weight"), expected.detach())


def test_save_functions_refuse_the_wrong_model_class(tmp_path):
    with pytest.raises(TypeError, match="save_clip_model"):
        save_text_encoder(tiny_clip_model(), tmp_path / "a")
    with pytest.raises(TypeError, match="save_text_encoder"):
        save_clip_model(tiny_text_encoder(), tmp_path / "b")
    assert list(tmp_path.iterdir()) == []
