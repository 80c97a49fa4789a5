"""load_text_encoder / load_clip_model / load_tokenizer: every kind of source, the conversion
cache, and the one clear error when the hub is needed but unreachable."""

from __future__ import annotations

import os

import huggingface_hub
import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPModel, CLIPTextModel, CLIPTextModelWithProjection

import longclip_diffusers.io.export
from longclip_diffusers import (
    CheckpointError,
    ModelNotAvailableError,
    convert_checkpoint,
    load_clip_model,
    load_text_encoder,
    load_tokenizer,
    save_clip_model,
    save_text_encoder,
)
from longclip_diffusers.io.loading import resolve_pipeline
from longclip_diffusers.tiny import (
    tiny_clip_model,
    tiny_clip_tokenizer,
    tiny_openai_state_dict,
    tiny_sd_pipeline,
    tiny_text_encoder,
)

# CLIP's real vocabulary size, so the converter's default special ids (49406/49407) fit.
CLIP_VOCAB = 49408


@pytest.fixture(scope="module")
def openai_state_dict():
    return tiny_openai_state_dict(vocab_size=CLIP_VOCAB)


@pytest.fixture
def checkpoint_pt(tmp_path, openai_state_dict):
    path = tmp_path / "longclip-tiny.pt"
    torch.save(openai_state_dict, path)
    return path


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def input_ids():
    return torch.tensor([[CLIP_VOCAB - 2, 5, 17, 300, CLIP_VOCAB - 1, 0, 0]])


@pytest.fixture
def count_conversions(monkeypatch):
    """Counts calls of the converter behind the cache."""
    calls = []
    real = longclip_diffusers.io.export.convert_checkpoint

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(longclip_diffusers.io.export, "convert_checkpoint", counting)
    return calls


def assert_same_text_outputs(got, expected, input_ids):
    expected_hidden = expected(input_ids).last_hidden_state
    torch.testing.assert_close(got(input_ids).last_hidden_state, expected_hidden, rtol=0, atol=0)


def test_pt_checkpoint_loads_as_the_converted_text_encoder(checkpoint_pt, cache, input_ids):
    encoder = load_text_encoder(checkpoint_pt, cache_dir=cache)
    assert type(encoder) is CLIPTextModel
    assert encoder.config.max_position_embeddings == 248
    assert not encoder.training
    assert_same_text_outputs(encoder, convert_checkpoint(checkpoint_pt, kind="text"), input_ids)


def test_safetensors_checkpoint_loads_like_the_pt(tmp_path, openai_state_dict, checkpoint_pt, cache, input_ids):
    path = tmp_path / "longclip-tiny.safetensors"
    save_file(openai_state_dict, path)
    assert_same_text_outputs(
        load_text_encoder(path, cache_dir=cache), load_text_encoder(checkpoint_pt, cache_dir=cache), input_ids
    )


def test_with_projection_gives_the_projected_features(checkpoint_pt, cache, input_ids):
    encoder = load_text_encoder(checkpoint_pt, with_projection=True, cache_dir=cache)
    assert type(encoder) is CLIPTextModelWithProjection
    expected = convert_checkpoint(checkpoint_pt, kind="text_with_projection")
    expected_embeds = expected(input_ids).text_embeds
    torch.testing.assert_close(encoder(input_ids).text_embeds, expected_embeds, rtol=0, atol=0)


def test_full_checkpoint_loads_as_a_clip_model(checkpoint_pt, cache, input_ids):
    model = load_clip_model(checkpoint_pt, cache_dir=cache)
    assert type(model) is CLIPModel
    pixels = torch.randn(1, 3, 32, 32)
    expected = convert_checkpoint(checkpoint_pt, kind="full")(input_ids=input_ids, pixel_values=pixels)
    got = model(input_ids=input_ids, pixel_values=pixels)
    torch.testing.assert_close(got.logits_per_image, expected.logits_per_image)


def test_second_load_reads_the_cache_without_converting(checkpoint_pt, cache, count_conversions, input_ids):
    first = load_text_encoder(checkpoint_pt, cache_dir=cache)
    assert len(count_conversions) == 1
    second = load_text_encoder(checkpoint_pt, cache_dir=cache)
    assert len(count_conversions) == 1
    assert_same_text_outputs(second, first, input_ids)
    (entry,) = cache.iterdir()
    assert (entry / "model.safetensors").is_file() and (entry / "config.json").is_file()


def test_a_changed_checkpoint_file_is_converted_again(checkpoint_pt, cache, count_conversions):
    load_text_encoder(checkpoint_pt, cache_dir=cache)
    stat = checkpoint_pt.stat()
    os.utime(checkpoint_pt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_text_encoder(checkpoint_pt, cache_dir=cache)
    assert len(count_conversions) == 2


def test_a_plain_clip_file_is_stretched_by_default_and_kept_at_77_without(tmp_path, cache, count_conversions):
    path = tmp_path / "ViT-tiny.pt"
    state = tiny_openai_state_dict(vocab_size=CLIP_VOCAB, context=77, two_position_tables=False)
    torch.save(state, path)
    stretched = load_clip_model(path, cache_dir=cache)
    plain = load_clip_model(path, cache_dir=cache, stretch=False)
    assert stretched.config.text_config.max_position_embeddings == 248
    assert plain.config.text_config.max_position_embeddings == 77
    table = plain.text_model.embeddings.position_embedding.weight
    torch.testing.assert_close(table, state["positional_embedding"], rtol=0, atol=0)
    # each conversion has its own cache entry, so neither answers for the other
    assert len(count_conversions) == 2 and len(list(cache.iterdir())) == 2
    text = load_text_encoder(path, cache_dir=cache, stretch=False)
    assert text.config.max_position_embeddings == 77


def test_cache_location_follows_the_environment(checkpoint_pt, tmp_path, monkeypatch, count_conversions):
    monkeypatch.setenv("LONGCLIP_DIFFUSERS_CACHE", str(tmp_path / "env-cache"))
    load_text_encoder(checkpoint_pt)
    assert len(list((tmp_path / "env-cache").iterdir())) == 1


def test_failed_conversion_leaves_no_cache_entry(tmp_path, cache):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError):
        load_text_encoder(broken, cache_dir=cache)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_text_encoder_folder_loads_as_saved(tmp_path, input_ids):
    model = tiny_text_encoder()
    save_text_encoder(model, tmp_path / "enc")
    assert_same_text_outputs(load_text_encoder(tmp_path / "enc"), model, input_ids[:, :5] % 800)


def test_clip_model_folder_gives_its_text_encoder_and_the_full_model(tmp_path, input_ids):
    model = tiny_clip_model()
    save_clip_model(model, tmp_path / "clip")
    ids = input_ids[:, :5] % 800
    text = load_text_encoder(str(tmp_path / "clip"))
    expected_hidden = model.text_model(ids).last_hidden_state
    torch.testing.assert_close(text(ids).last_hidden_state, expected_hidden, rtol=0, atol=0)
    projected = load_text_encoder(tmp_path / "clip", with_projection=True)
    assert type(projected) is CLIPTextModelWithProjection
    assert type(load_clip_model(tmp_path / "clip")) is CLIPModel


def test_pipeline_text_encoder_folder_loads_and_the_pipeline_root_is_explained(tmp_path):
    tiny_sd_pipeline().save_pretrained(tmp_path / "pipe")
    encoder = load_text_encoder(tmp_path / "pipe" / "text_encoder")
    assert type(encoder) is CLIPTextModel
    with pytest.raises(CheckpointError, match="text_encoder"):
        load_text_encoder(tmp_path / "pipe")


def test_projection_is_not_invented_for_a_folder_without_one(tmp_path):
    save_text_encoder(tiny_text_encoder(), tmp_path / "enc")
    with pytest.raises(CheckpointError, match="without with_projection"):
        load_text_encoder(tmp_path / "enc", with_projection=True)


def test_a_text_encoder_is_not_a_clip_model(tmp_path):
    save_text_encoder(tiny_text_encoder(), tmp_path / "enc")
    with pytest.raises(CheckpointError, match="vision"):
        load_clip_model(tmp_path / "enc")


def test_dtype_and_device_options(tmp_path):
    save_text_encoder(tiny_text_encoder(), tmp_path / "enc")
    encoder = load_text_encoder(tmp_path / "enc", torch_dtype="bfloat16", device="cpu")
    assert encoder.dtype == torch.bfloat16 and encoder.device.type == "cpu"


def test_missing_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text_encoder(tmp_path / "nowhere.pt")


@pytest.fixture
def empty_offline_hub(tmp_path, monkeypatch):
    """An empty hub cache and offline mode (huggingface_hub reads HF_HUB_OFFLINE at import)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_offline_hub_id_names_the_repo_the_file_and_where_to_put_it(empty_offline_hub, cache):
    with pytest.raises(ModelNotAvailableError) as error:
        load_text_encoder("BeichenZhang/LongCLIP-L", cache_dir=cache)
    message = str(error.value)
    assert "BeichenZhang/LongCLIP-L" in message and "longclip-L.pt" in message
    assert "download BeichenZhang/LongCLIP-L longclip-L.pt --local-dir" in message
    assert "pass ./LongCLIP-L/longclip-L.pt" in message
    assert "\n" not in message


def test_offline_transformers_repo_is_the_same_clear_error(empty_offline_hub):
    with pytest.raises(ModelNotAvailableError, match="someone/clip-text-encoder"):
        load_text_encoder("someone/clip-text-encoder")


def test_tokenizer_is_found_beside_a_pipeline_text_encoder(tmp_path):
    pipe = tiny_sd_pipeline()
    pipe.save_pretrained(tmp_path / "pipe")
    tokenizer = load_tokenizer(tmp_path / "pipe" / "text_encoder", fallback=None, model_max_length=248)
    assert tokenizer.model_max_length == 248
    assert tokenizer.get_vocab() == pipe.tokenizer.get_vocab()


def test_tokenizer_of_a_checkpoint_file_is_the_fallback(tmp_path, checkpoint_pt):
    tiny_clip_tokenizer().save_pretrained(tmp_path / "tok")
    assert len(load_tokenizer(checkpoint_pt, fallback=tmp_path / "tok")) == len(tiny_clip_tokenizer())
    with pytest.raises(ValueError, match="no tokenizer"):
        load_tokenizer(checkpoint_pt, fallback=None)


def test_folder_without_tokenizer_files_is_refused_not_loaded_empty(tmp_path, checkpoint_pt):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no tokenizer"):
        load_tokenizer(checkpoint_pt, fallback=tmp_path / "empty")


def test_offline_default_tokenizer_is_a_clear_error(empty_offline_hub, checkpoint_pt):
    with pytest.raises(ModelNotAvailableError, match="openai/clip-vit-large-patch14.*--tokenizer DIR"):
        load_tokenizer(checkpoint_pt)


def test_an_exported_weights_file_loads_as_its_folder(tmp_path, input_ids):
    model = tiny_text_encoder()
    save_text_encoder(model, tmp_path / "enc")
    loaded = load_text_encoder(tmp_path / "enc" / "model.safetensors")
    assert_same_text_outputs(loaded, model, input_ids[:, :5] % 800)


def test_a_weights_file_without_config_and_without_clip_vocabulary_is_refused(tmp_path, cache):
    save_text_encoder(tiny_text_encoder(), tmp_path / "enc")
    alone = tmp_path / "clip_l.safetensors"
    (tmp_path / "enc" / "model.safetensors").rename(alone)
    with pytest.raises(CheckpointError, match=r"has a vocabulary of \d+ tokens, too small for CLIP's start/end ids"):
        load_text_encoder(alone, cache_dir=cache)


def test_a_saved_pipeline_folder_resolves_to_itself(tmp_path):
    tiny_sd_pipeline().save_pretrained(tmp_path / "pipe")
    assert resolve_pipeline(tmp_path / "pipe") == tmp_path / "pipe"


@pytest.mark.parametrize("make", [lambda path: None, lambda path: path.mkdir()], ids=["missing", "not-a-pipeline"])
def test_a_bad_pipeline_folder_is_a_clear_error(tmp_path, make):
    make(tmp_path / "pipe")
    with pytest.raises(FileNotFoundError, match=r"(does not exist|no model_index.json\))\. Fix: pass"):
        resolve_pipeline(str(tmp_path / "pipe"))


def test_offline_pipeline_hub_id_says_what_to_download(empty_offline_hub):
    with pytest.raises(ModelNotAvailableError) as error:
        resolve_pipeline("someone/sdxl-finetune")
    message = str(error.value)
    assert "someone/sdxl-finetune" in message and "hf download someone/sdxl-finetune --include" in message
    assert "as the pipeline (--pipeline DIR)" in message and "\n" not in message
