"""Text encoders in the single files ComfyUI users have: ComfyUI text-encoder files (``text_model.*``,
``clip_l.`` / ``clip_g.`` prefixes), SD1.x / SDXL / SD3 / Flux checkpoints, transformers weights
without their folder, and diffusers pipeline folders; each loads through ``load_text_encoder``
with the same weights, and a 77-position encoder is stretched to 248 on load."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from longclip_diffusers import CheckpointError, convert_checkpoint, load_text_encoder, load_tokenizer
from longclip_diffusers.conversion.single_file import find_text_towers, keys_to_read, text_config_from_weights
from longclip_diffusers.io.export import prefixed_state_dict
from longclip_diffusers.length.stretching import stretch_position_table
from longclip_diffusers.tiny import tiny_clip_tokenizer, tiny_openai_state_dict, tiny_sdxl_pipeline

# CLIP's vocabulary, so the default special ids (49406/49407) are in it, as in every real file.
CLIP_VOCAB = 49408


def clip_text_encoder(width=64, layers=2, positions=248, seed=0, projection=True):
    """A random CLIP text tower of CLIP's vocabulary, as the converter would build it."""
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB,
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=width // 64,
        max_position_embeddings=positions,
        projection_dim=width,
        hidden_act="gelu" if layers >= 23 else "quick_gelu",
        layer_norm_eps=1e-5,
        bos_token_id=49406,
        eos_token_id=49407,
    )
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(config).eval()


def comfy_file(model, prefix=""):
    """``model`` keyed as ComfyUI saves text encoders (``text_model.*``, ``text_projection.weight``)."""
    return {prefix + key: value for key, value in prefixed_state_dict(model).items()}


IDS = torch.tensor([[49406, 320, 1929, 530, 49407, 0, 0]])


def assert_same_encoder(loaded, expected):
    assert loaded.config.max_position_embeddings == expected.config.max_position_embeddings
    with torch.no_grad():
        got, want = loaded(IDS, output_hidden_states=True), expected(IDS, output_hidden_states=True)
    torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state, rtol=0, atol=0)
    if isinstance(loaded, CLIPTextModelWithProjection):
        torch.testing.assert_close(got.text_embeds, want.text_embeds, rtol=0, atol=0)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.mark.parametrize("projection", [False, True])
def test_comfyui_text_model_file_loads_with_its_weights(tmp_path, cache, projection):
    model = clip_text_encoder(projection=projection)
    save_file(comfy_file(model), tmp_path / "sd15_clip_l.safetensors")
    loaded = load_text_encoder(tmp_path / "sd15_clip_l.safetensors", with_projection=projection, cache_dir=cache)
    assert type(loaded) is type(model)
    assert_same_encoder(loaded, model)


def test_transformers_5_flat_weights_file_without_its_folder_loads(tmp_path, cache):
    model = clip_text_encoder(projection=False)
    flat = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert not any(key.startswith("text_model.") for key in flat)
    save_file(flat, tmp_path / "model.safetensors")
    assert_same_encoder(load_text_encoder(tmp_path / "model.safetensors", cache_dir=cache), model)


def test_77_position_file_is_stretched_to_248_on_load(tmp_path, cache):
    stock = clip_text_encoder(positions=77, projection=False)
    save_file(comfy_file(stock), tmp_path / "clip_l.safetensors")
    loaded = load_text_encoder(tmp_path / "clip_l.safetensors", cache_dir=cache)
    table = loaded.embeddings.position_embedding.weight
    assert table.shape == (248, 64)
    torch.testing.assert_close(table, stretch_position_table(stock.embeddings.position_embedding.weight))
    kept = load_text_encoder(tmp_path / "clip_l.safetensors", cache_dir=cache, stretch=False)
    assert kept.config.max_position_embeddings == 77


def test_old_clipsave_projection_matrix_is_transposed(tmp_path, cache):
    model = clip_text_encoder()
    weights = comfy_file(model)
    weights["text_projection"] = weights.pop("text_projection.weight").t().contiguous()
    save_file(weights, tmp_path / "clip_g_old.safetensors")
    assert_same_encoder(
        load_text_encoder(tmp_path / "clip_g_old.safetensors", with_projection=True, cache_dir=cache), model
    )


@pytest.fixture(scope="module")
def towers():
    return {"clip_l": clip_text_encoder(64, seed=1), "clip_g": clip_text_encoder(128, seed=2)}


@pytest.mark.parametrize(
    "prefixes",
    [
        {"clip_l": "clip_l.transformer.", "clip_g": "clip_g.transformer."},  # ComfyUI's CLIP state dict
        {"clip_l": "clip_l.", "clip_g": "clip_g."},
        {"clip_l": "text_encoders.clip_l.transformer.", "clip_g": "text_encoders.clip_g.transformer."},  # SD3
    ],
)
@pytest.mark.parametrize("tower", ["clip_l", "clip_g"])
def test_prefixed_towers_load_by_slot(tmp_path, cache, towers, prefixes, tower):
    weights = {}
    for name, prefix in prefixes.items():
        weights.update(comfy_file(towers[name], prefix))
    weights["clip_l.logit_scale"] = torch.tensor(4.6)
    save_file(weights, tmp_path / "clip.safetensors")
    loaded = load_text_encoder(tmp_path / "clip.safetensors", with_projection=True, tower=tower, cache_dir=cache)
    assert_same_encoder(loaded, towers[tower])


def test_sd15_checkpoint_gives_its_text_encoder_and_reads_only_its_keys(tmp_path, cache, towers):
    weights = comfy_file(towers["clip_l"], "cond_stage_model.transformer.")
    weights.pop("cond_stage_model.transformer.text_projection.weight")
    weights["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(320, 4, 3, 3)
    weights["first_stage_model.decoder.conv_in.weight"] = torch.zeros(4, 4)
    save_file(weights, tmp_path / "v1-5-pruned.safetensors")
    shapes = {key: tuple(value.shape) for key, value in weights.items()}
    assert all(key.startswith("cond_stage_model.") for key in keys_to_read(shapes, "clip_l"))
    loaded = load_text_encoder(tmp_path / "v1-5-pruned.safetensors", tower="clip_l", cache_dir=cache)
    assert type(loaded) is CLIPTextModel
    assert_same_encoder(loaded, towers["clip_l"])


def test_an_openai_layout_file_is_read_whole_for_its_vision_tower():
    full = tiny_openai_state_dict(vocab_size=CLIP_VOCAB)
    shapes = {key: tuple(value.shape) for key, value in full.items()}
    assert any(key.startswith("visual.") for key in shapes)
    assert keys_to_read(shapes, "clip_l") == list(shapes)


def test_sdxl_checkpoint_gives_clip_l_and_openclip_layout_bigg_by_slot(tmp_path, cache, towers):
    openai_g = tiny_openai_state_dict(
        width=128, layers=2, context=77, vocab_size=CLIP_VOCAB, two_position_tables=False
    )
    weights = comfy_file(towers["clip_l"], "conditioner.embedders.0.")
    weights.pop("conditioner.embedders.0.text_projection.weight")
    weights.update(
        {f"conditioner.embedders.1.model.{k}": v for k, v in openai_g.items() if not k.startswith("visual.")}
    )
    weights["model.diffusion_model.out.2.weight"] = torch.zeros(4, 320, 3, 3)
    save_file(weights, tmp_path / "sd_xl_base.safetensors")

    clip_g = load_text_encoder(
        tmp_path / "sd_xl_base.safetensors", with_projection=True, tower="clip_g", cache_dir=cache
    )
    root_g = {k: v for k, v in openai_g.items() if not k.startswith("visual.") and k != "logit_scale"}
    assert_same_encoder(clip_g, convert_checkpoint(root_g, kind="text_with_projection"))
    assert clip_g.config.max_position_embeddings == 248
    clip_l = load_text_encoder(tmp_path / "sd_xl_base.safetensors", tower="clip_l", cache_dir=cache)
    assert clip_l.config.hidden_size == 64


def test_file_with_two_encoders_and_no_slot_says_to_choose(tmp_path, cache, towers):
    weights = {**comfy_file(towers["clip_l"], "clip_l."), **comfy_file(towers["clip_g"], "clip_g.")}
    save_file(weights, tmp_path / "both.safetensors")
    with pytest.raises(CheckpointError, match="holds 2 text encoders .*tower= 'clip_l' or 'clip_g'"):
        load_text_encoder(tmp_path / "both.safetensors", cache_dir=cache)


def test_a_clip_g_file_without_tokenizer_gets_the_fallback_padded_as_bigg(tmp_path):
    tiny_clip_tokenizer().save_pretrained(tmp_path / "clip_tokenizer")
    save_file(comfy_file(clip_text_encoder()), tmp_path / "clip_g.safetensors")
    clip_g = load_tokenizer(tmp_path / "clip_g.safetensors", fallback=tmp_path / "clip_tokenizer", tower="clip_g")
    clip_l = load_tokenizer(tmp_path / "clip_g.safetensors", fallback=tmp_path / "clip_tokenizer", tower="clip_l")
    assert clip_g.pad_token == "!" and clip_g.pad_token_id == clip_g.convert_tokens_to_ids("!")
    assert clip_l.pad_token == clip_l.eos_token


def test_clip_g_slot_refuses_a_file_without_projection(tmp_path, cache):
    save_file(comfy_file(clip_text_encoder(projection=False)), tmp_path / "clip_l.safetensors")
    with pytest.raises(CheckpointError, match="no text projection .*clip_l slot"):
        load_text_encoder(tmp_path / "clip_l.safetensors", with_projection=True, cache_dir=cache)


def test_a_single_text_file_cannot_become_a_full_clip_model(tmp_path):
    with pytest.raises(CheckpointError, match="text encoders only, but a CLIPModel needs the vision tower"):
        convert_checkpoint(comfy_file(clip_text_encoder()), kind="full")


def test_openclip_depth_means_gelu_as_comfyui_tells_towers_apart():
    deep = comfy_file(clip_text_encoder(layers=23, seed=3))
    shallow = comfy_file(clip_text_encoder(layers=12, seed=3))
    assert text_config_from_weights(deep).hidden_act == "gelu"
    assert text_config_from_weights(shallow).hidden_act == "quick_gelu"


def test_towers_are_found_by_their_token_embedding_whatever_the_prefix(towers):
    weights = {**comfy_file(towers["clip_l"], "some.wrapper."), "other.weight": torch.zeros(2)}
    (found,) = find_text_towers({k: tuple(v.shape) for k, v in weights.items()})
    assert (found.prefix, found.layout, found.width, found.layers) == ("some.wrapper.", "transformers", 64, 2)


@pytest.mark.parametrize("tower, folder", [("clip_l", "text_encoder"), ("clip_g", "text_encoder_2")])
def test_pipeline_folder_gives_the_slot_text_encoder_and_its_tokenizer(tmp_path, tower, folder):
    pipe = tiny_sdxl_pipeline()
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = load_text_encoder(tmp_path / "pipe", with_projection=tower == "clip_g", tower=tower)
    expected = getattr(pipe, folder)
    assert loaded.config.hidden_size == expected.config.hidden_size
    tokenizer = load_tokenizer(tmp_path / "pipe", tower=tower)
    expected_tokenizer = pipe.tokenizer if tower == "clip_l" else pipe.tokenizer_2
    assert tokenizer.pad_token == expected_tokenizer.pad_token


def test_pipeline_folder_without_the_slot_folder_is_a_clear_error(tmp_path):
    pipe = tiny_sdxl_pipeline()
    pipe.save_pretrained(tmp_path / "pipe")
    (tmp_path / "pipe" / "text_encoder_2" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="has no text_encoder_2 folder, where its clip_g"):
        load_text_encoder(tmp_path / "pipe", tower="clip_g")
