"""The ComfyUI nodes in ``demos/comfyui``, loaded the way ComfyUI loads a custom-node folder.

ComfyUI itself is not installed here: ``comfy`` and ``folder_paths`` are the stand-ins in
``tests/comfyui_stubs`` (each names the ComfyUI version it mirrors; every behaviour they imitate is
checked against a real checkout by ``demos/comfyui/check_real_comfyui.py``). The encoders are tiny
random models; the widths the nodes check (768 for clip_l, 1280 for clip_g) are set to the tiny
ones (64, 128), and the tiny bigG has 31 layers, so ComfyUI's rule "a layer 30 means clip_g" holds.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from longclip_diffusers import IncompatibleEncoderError, convert_checkpoint, save_text_encoder, tiny
from longclip_diffusers.comfyui import clip_state_dicts
from longclip_diffusers.comfyui.clip_state_dicts import check_slot_width
from longclip_diffusers.comfyui.conditioning import (
    EncoderWithTokenizer,
    encode_sd15,
    encode_sdxl,
    fit_encoder_with_tokenizer,
    sd15_conditioning,
    sdxl_conditioning,
)
from longclip_diffusers.conversion.openai_keys import TEXT_POSITION_KEY
from longclip_diffusers.drop_in.swap_encoders import apply_long_clip
from longclip_diffusers.io.export import prefixed_state_dict

REPO = Path(__file__).resolve().parents[1]
NODES_DIR = REPO / "demos" / "comfyui"
STUBS_DIR = Path(__file__).resolve().parent / "comfyui_stubs"
L_WIDTH, G_WIDTH, G_LAYERS, G_PROJECTION = 64, 128, 31, 40
CLIP_L_POSITION = "clip_l.transformer." + TEXT_POSITION_KEY


def load_like_comfyui(module_path: Path):
    """What ComfyUI's ``nodes.load_custom_node`` does with a folder in ``custom_nodes``."""
    module_name = os.path.basename(module_path)
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(module_path, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def nodes():
    before = set(sys.modules)
    module = load_like_comfyui(NODES_DIR)
    yield module
    for name in set(sys.modules) - before:
        if name == "comfyui" or name.startswith("comfyui."):
            del sys.modules[name]


@pytest.fixture
def folder_paths(monkeypatch, tmp_path):
    """The stand-in ``folder_paths`` with ComfyUI's model folders under tmp_path."""
    spec = importlib.util.spec_from_file_location("folder_paths", STUBS_DIR / "folder_paths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = ("text_encoders", "clip", "checkpoints", "embeddings")
    folders = {name: tmp_path / "models" / name for name in names}
    for folder in folders.values():
        folder.mkdir(parents=True)
    module.folder_names_and_paths.update(
        {
            "text_encoders": ([str(folders["text_encoders"]), str(folders["clip"])], module.supported_pt_extensions),
            "checkpoints": ([str(folders["checkpoints"])], module.supported_pt_extensions),
            "embeddings": ([str(folders["embeddings"])], module.supported_pt_extensions),
        }
    )
    monkeypatch.setitem(sys.modules, "folder_paths", module)
    return folders


def _forget_comfy():
    for name in [n for n in sys.modules if n == "comfy" or n.startswith("comfy.")]:
        del sys.modules[name]


@pytest.fixture
def comfy(tmp_path, monkeypatch, folder_paths):
    """The stand-in ``comfy`` package, with the tiny tokenizer as its ``comfy/sd1_tokenizer``."""
    site = tmp_path / "site"
    shutil.copytree(STUBS_DIR / "comfy", site / "comfy")
    tiny.tiny_clip_tokenizer().save_pretrained(site / "comfy" / "sd1_tokenizer")
    _forget_comfy()
    monkeypatch.syspath_prepend(str(site))
    import comfy.sd

    yield comfy
    _forget_comfy()


@pytest.fixture(autouse=True)
def conversion_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LONGCLIP_DIFFUSERS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def tiny_slot_widths(monkeypatch):
    monkeypatch.setitem(clip_state_dicts.SLOT_WIDTHS, "clip_l", L_WIDTH)
    monkeypatch.setitem(clip_state_dicts.SLOT_WIDTHS, "clip_g", G_WIDTH)


def tiny_l(seed=0, positions=77, tokenizer=None):
    """A tiny CLIP-L: heads of 64 and QuickGELU, as a converter builds it from a file."""
    tokenizer = tokenizer or tiny.tiny_clip_tokenizer()
    return tiny.tiny_text_encoder(
        seed=seed,
        tokenizer=tokenizer,
        hidden_size=L_WIDTH,
        num_heads=1,
        hidden_act="quick_gelu",
        max_position_embeddings=positions,
    )


def tiny_g(seed=1, positions=77, tokenizer=None):
    """A tiny bigG: 31 layers (ComfyUI routes a layer 30 to clip_g), GELU, with projection."""
    tokenizer = tokenizer or tiny.tiny_clip_tokenizer(pad_token="!")
    return tiny.tiny_text_encoder(
        True,
        seed=seed,
        tokenizer=tokenizer,
        hidden_size=G_WIDTH,
        num_heads=2,
        num_layers=G_LAYERS,
        projection_dim=G_PROJECTION,
        max_position_embeddings=positions,
    )


@pytest.fixture(scope="module")
def clip_l():
    tokenizer = tiny.tiny_clip_tokenizer()
    return fit_encoder_with_tokenizer(tiny_l(seed=4, tokenizer=tokenizer), tokenizer)


@pytest.fixture(scope="module")
def clip_g():
    tokenizer = tiny.tiny_clip_tokenizer(pad_token="!")
    return fit_encoder_with_tokenizer(tiny_g(seed=5, tokenizer=tokenizer), tokenizer)


def _words(count: int, offset: int = 0) -> list[str]:
    return [tiny.TINY_WORDS[(i + offset) % len(tiny.TINY_WORDS)] for i in range(count)]


def _tail_changed(words: list[str], at: int = 120) -> str:
    changed = list(words)
    changed[at] = "dragon" if changed[at] != "dragon" else "castle"
    return " ".join(changed)


def stock_clip(comfy, *towers):
    """A ComfyUI CLIP as its CLIP loaders build one from ``towers`` (models or state dicts)."""
    state_dicts = [t if isinstance(t, dict) else prefixed_state_dict(t) for t in towers]
    clip_type = comfy.sd.CLIPType.FLUX if any("shared.weight" in sd for sd in state_dicts) else None
    if len(state_dicts) == 3:
        clip_type = comfy.sd.CLIPType.SD3
    return comfy.sd.load_text_encoder_state_dicts(
        state_dicts, clip_type=clip_type or comfy.sd.CLIPType.STABLE_DIFFUSION
    )


def tiny_t5(seed=7, vocab=None, width=96):
    generator = torch.Generator().manual_seed(seed)
    vocab = vocab or len(tiny.tiny_clip_tokenizer())
    return {
        "shared.weight": torch.randn(vocab, width, generator=generator),
        "encoder.final_layer_norm.weight": 1 + 0.1 * torch.randn(width, generator=generator),
    }


# --- the package and its node contract ------------------------------------------------------


def test_comfyui_loader_imports_package_by_path_with_all_nodes_named(nodes):
    assert nodes.__name__ == "comfyui"
    assert set(nodes.NODE_CLASS_MAPPINGS) == {
        "LongCLIPTextEncoderLoader",
        "LongCLIPTextEncodeSD15",
        "LongCLIPTextEncodeSDXL",
        "LongCLIPIntoCLIP",
    }
    assert set(nodes.NODE_DISPLAY_NAME_MAPPINGS) == set(nodes.NODE_CLASS_MAPPINGS)
    assert all(name.strip() for name in nodes.NODE_DISPLAY_NAME_MAPPINGS.values())


@pytest.mark.parametrize(
    "name, returns, inputs",
    [
        ("LongCLIPTextEncoderLoader", ("LONGCLIP_TEXT_ENCODER",), {"model", "path_or_hub_id", "slot"}),
        ("LongCLIPTextEncodeSD15", ("CONDITIONING",), {"text_encoder", "text", "clip_skip"}),
        (
            "LongCLIPTextEncodeSDXL",
            ("CONDITIONING",),
            {
                "clip_l",
                "clip_g",
                "width",
                "height",
                "crop_w",
                "crop_h",
                "target_width",
                "target_height",
                "text_g",
                "text_l",
                "recipe",
            },
        ),
        ("LongCLIPIntoCLIP", ("CLIP",), {"clip", "text_encoder"}),
    ],
)
def test_node_declares_inputs_returns_function_and_category(nodes, name, returns, inputs):
    cls = nodes.NODE_CLASS_MAPPINGS[name]
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"}
    assert set(spec["required"]) == inputs
    for declared in spec["required"].values():
        assert isinstance(declared, tuple) and isinstance(declared[0], (str, list))
        if len(declared) > 1:
            assert isinstance(declared[1], dict)
    assert cls.RETURN_TYPES == returns
    assert callable(getattr(cls(), cls.FUNCTION))
    assert cls.CATEGORY == "conditioning/longclip"


def test_every_stand_in_names_the_comfyui_version_it_mirrors():
    modules = sorted(STUBS_DIR.rglob("*.py"))
    assert len(modules) >= 8
    for path in modules:
        docstring = path.read_text().split('"""')[1]
        assert "ComfyUI v0.3.64" in docstring, path


# --- the loader and ComfyUI's model folders -------------------------------------------------


def test_loader_offers_typed_source_only_outside_comfyui(nodes, monkeypatch):
    monkeypatch.setitem(sys.modules, "folder_paths", None)  # import folder_paths -> ImportError
    choices = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"].INPUT_TYPES()["required"]["model"][0]
    assert choices == [nodes.model_folders.TYPED_SOURCE]


def test_loader_lists_files_of_text_encoder_clip_and_checkpoint_folders(nodes, folder_paths):
    (folder_paths["clip"] / "longclip-L.pt").write_bytes(b"")
    (folder_paths["text_encoders"] / "clip_g.safetensors").write_bytes(b"")
    (folder_paths["checkpoints"] / "sd_xl_base_1.0.safetensors").write_bytes(b"")
    (folder_paths["text_encoders"] / "notes.txt").write_text("not a model")
    choices = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"].INPUT_TYPES()["required"]["model"][0]
    assert choices == [
        nodes.model_folders.TYPED_SOURCE,
        "clip_g.safetensors",
        "longclip-L.pt",
        "sd_xl_base_1.0.safetensors",
    ]


def test_loader_loads_transformers_folder_picked_from_list_at_248(nodes, folder_paths, clip_l):
    save_text_encoder(clip_l.model, folder_paths["text_encoders"] / "tiny-longclip", tokenizer=clip_l.tokenizer)
    loader = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"]()
    (encoder,) = loader.load("tiny-longclip/model.safetensors", "", "clip_l")
    assert encoder.positions == 248 and encoder.tokenizer.model_max_length == 248
    assert torch.equal(
        encoder.model.embeddings.position_embedding.weight, clip_l.model.embeddings.position_embedding.weight
    )


def test_loader_stretches_typed_77_position_clip_g_to_248(nodes, tmp_path):
    tokenizer = tiny.tiny_clip_tokenizer(pad_token="!")
    bigg = tiny_g(seed=3, tokenizer=tokenizer)
    save_text_encoder(bigg, tmp_path / "text_encoder_2", tokenizer=tokenizer)
    loader = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"]()
    (encoder,) = loader.load(nodes.model_folders.TYPED_SOURCE, str(tmp_path / "text_encoder_2"), "clip_g")
    table = encoder.model.text_model.embeddings.position_embedding.weight
    assert encoder.positions == 248 and table.shape == (248, G_WIDTH)
    assert torch.equal(table[:20], bigg.text_model.embeddings.position_embedding.weight[:20])
    assert encoder.tokenizer.model_max_length == 248
    assert encoder.model.text_projection is not None


def clip_vocab_encoder(width, layers, seed, projection=True):
    """A tiny tower of CLIP's full vocabulary, as in ComfyUI's single files (which carry no
    tokenizer, so the loader needs CLIP's special ids in the vocabulary)."""
    tokenizer = tiny.tiny_clip_tokenizer()
    config = tiny.tiny_text_config(tokenizer, hidden_size=width, num_layers=layers, num_heads=width // 64)
    config.vocab_size, config.bos_token_id, config.eos_token_id = 49408, 49406, 49407
    config.hidden_act = "gelu" if layers >= 23 else "quick_gelu"
    torch.manual_seed(seed)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(config).eval()


@pytest.mark.parametrize("form", ["sdxl_clip_g.safetensors", "sdxl_checkpoint.safetensors"])
def test_comfyui_clip_g_file_and_sdxl_checkpoint_load_in_the_sdxl_node(nodes, comfy, folder_paths, clip_l, form):
    bigg = clip_vocab_encoder(G_WIDTH, G_LAYERS, seed=8)
    if form == "sdxl_clip_g.safetensors":
        save_file(prefixed_state_dict(bigg), folder_paths["clip"] / form)
        choice = form
    else:
        checkpoint = {f"conditioner.embedders.1.transformer.{k}": v for k, v in prefixed_state_dict(bigg).items()}
        l_tower = prefixed_state_dict(clip_vocab_encoder(L_WIDTH, 2, seed=9, projection=False))
        checkpoint.update({f"conditioner.embedders.0.transformer.{k}": v for k, v in l_tower.items()})
        checkpoint["model.diffusion_model.out.2.weight"] = torch.zeros(4, 8)
        save_file(checkpoint, folder_paths["checkpoints"] / form)
        choice = form
    loader = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"]()
    (encoder,) = loader.load(choice, "", "clip_g")
    assert encoder.positions == 248 and encoder.width == G_WIDTH
    torch.testing.assert_close(encoder.model.text_projection.weight, bigg.text_projection.weight)
    cond, extras = _sdxl(nodes, clip_l, encoder, "a red cat", "a red cat")
    assert cond.shape == (1, 248, L_WIDTH + G_WIDTH) and extras["pooled_output"].shape == (1, G_WIDTH)


def test_offline_long_clip_pt_from_models_clip_takes_comfyuis_own_tokenizer(nodes, comfy, folder_paths):
    tokenizer = tiny.tiny_clip_tokenizer()
    state_dict = tiny.tiny_openai_state_dict(width=L_WIDTH, vocab_size=49408, with_vision=False)
    torch.save(state_dict, folder_paths["clip"] / "longclip-L.pt")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    loader = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"]()
    (encoder,) = loader.load("longclip-L.pt", "", "clip_l")
    assert encoder.tokenizer.get_vocab() == tokenizer.get_vocab()
    assert encoder.tokenizer.model_max_length == 248 and encoder.positions == 248


def test_loader_without_a_choice_or_path_says_what_to_pick(nodes):
    loader = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"]()
    with pytest.raises(ValueError, match="pick a file from the list, or type a path"):
        loader.load(nodes.model_folders.TYPED_SOURCE, "  ", "clip_l")


def test_loader_reports_a_file_missing_from_the_folders(nodes, folder_paths):
    loader = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"]()
    with pytest.raises(FileNotFoundError, match="gone.safetensors"):
        loader.load("gone.safetensors", "", "clip_l")


# --- the encode nodes, on ComfyUI's text encoders ---------------------------------------------


def _sd15(nodes, encoder, text, clip_skip=0):
    ((cond, extras),) = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncodeSD15"]().encode(encoder, text, clip_skip)[0]
    return cond, extras


def _sdxl(nodes, clip_l, clip_g, text_g, text_l, recipe="standard"):
    node = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncodeSDXL"]()
    (conditioning,) = node.encode(clip_l, clip_g, 1152, 896, 16, 8, 1024, 768, text_g, text_l, recipe)
    ((cond, extras),) = conditioning
    return cond, extras


def test_sd15_encode_gives_248_token_conditioning_that_reads_past_token_77(nodes, comfy, clip_l):
    words = _words(150)
    cond, extras = _sd15(nodes, clip_l, " ".join(words))
    assert cond.shape == (1, 248, L_WIDTH) and cond.dtype == torch.float32
    assert extras["pooled_output"].shape == (1, L_WIDTH)
    changed, changed_extras = _sd15(nodes, clip_l, _tail_changed(words))
    assert not torch.allclose(cond, changed)
    assert not torch.allclose(extras["pooled_output"], changed_extras["pooled_output"])


def test_sd15_encode_is_comfyuis_clip_text_encode_on_long_clip_into_clip(nodes, comfy, clip_l):
    prompt = "a (red:1.4) cat, " + " ".join(_words(40))
    stock = stock_clip(comfy, tiny_l(seed=6))
    (long_clip,) = nodes.NODE_CLASS_MAPPINGS["LongCLIPIntoCLIP"]().apply(stock, clip_l)
    ((expected, expected_extras),) = long_clip.encode_from_tokens_scheduled(long_clip.tokenize(prompt))
    cond, extras = _sd15(nodes, clip_l, prompt)
    torch.testing.assert_close(cond, expected, rtol=0, atol=0)
    torch.testing.assert_close(extras["pooled_output"], expected_extras["pooled_output"], rtol=0, atol=0)


def test_sd15_encode_weights_a_prompt_instead_of_reading_the_brackets(nodes, comfy, clip_l):
    plain, _ = _sd15(nodes, clip_l, "a red cat on a hill")
    weighted, _ = _sd15(nodes, clip_l, "a (red:1.5) cat on a hill")
    assert weighted.shape == plain.shape == (1, 248, L_WIDTH)
    # the brackets and the number are no tokens: the plain prompt's tokens, with "red" reweighted
    changed = (weighted != plain).any(dim=-1)[0].nonzero().flatten().tolist()
    assert changed == [2]


def test_sd15_encode_chunks_past_248_tokens_with_a_console_warning(nodes, comfy, clip_l, caplog):
    words = _words(300)
    with caplog.at_level(logging.WARNING, logger="longclip_diffusers.comfyui"):
        cond, _ = _sd15(nodes, clip_l, " ".join(words))
    assert cond.shape == (1, 2 * 248, L_WIDTH)
    assert "2 chunks of 248 tokens" in caplog.text
    changed, _ = _sd15(nodes, clip_l, _tail_changed(words, at=280))
    assert not torch.allclose(cond[:, 248:], changed[:, 248:])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="longclip_diffusers.comfyui"):
        _sd15(nodes, clip_l, " ".join(_words(100)))
    assert "chunks" not in caplog.text


def test_sd15_encode_clip_skip_is_comfyuis_set_last_layer(nodes, comfy, clip_l):
    prompt = " ".join(_words(30))
    last, _ = _sd15(nodes, clip_l, prompt, 0)
    skipped, _ = _sd15(nodes, clip_l, prompt, 1)
    assert last.shape == skipped.shape and not torch.allclose(last, skipped)
    clip = nodes.comfy_clips.clip_of_encoders([clip_l.model]).clone()
    clip.clip_layer(-2)
    torch.testing.assert_close(skipped, clip.encode(prompt), rtol=0, atol=0)


def test_sd15_encode_matches_the_diffusers_read_out_for_a_prompt_that_fits(nodes, comfy, clip_l):
    prompt = " ".join(_words(150, offset=3))
    for clip_skip in (0, 1):
        cond, extras = _sd15(nodes, clip_l, prompt, clip_skip)
        ((expected, expected_extras),) = sd15_conditioning(clip_l, prompt, clip_skip or None)
        torch.testing.assert_close(cond, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(extras["pooled_output"], expected_extras["pooled_output"], rtol=1e-4, atol=1e-5)


def test_sd15_encode_refuses_an_encoder_of_another_width_before_comfyui(nodes, comfy, clip_g, monkeypatch):
    monkeypatch.setattr(comfy.sd, "load_text_encoder_state_dicts", None)
    with pytest.raises(IncompatibleEncoderError, match=f"is {G_WIDTH} wide.*clip_l slot reads {L_WIDTH}"):
        _sd15(nodes, clip_g, "a cat")


def test_sdxl_encode_concatenates_both_248_token_encoders_with_size_fields(nodes, comfy, clip_l, clip_g):
    prompt = " ".join(_words(150))
    cond, extras = _sdxl(nodes, clip_l, clip_g, prompt, prompt)
    assert cond.shape == (1, 248, L_WIDTH + G_WIDTH)
    assert extras["pooled_output"].shape == (1, G_PROJECTION)
    assert {k: v for k, v in extras.items() if k != "pooled_output"} == {
        "width": 1152,
        "height": 896,
        "crop_w": 16,
        "crop_h": 8,
        "target_width": 1024,
        "target_height": 768,
    }


def test_sdxl_encode_reads_words_past_token_77_in_both_encoders_and_pooled(nodes, comfy, clip_l, clip_g):
    words = _words(150, offset=7)
    cond, extras = _sdxl(nodes, clip_l, clip_g, " ".join(words), " ".join(words))
    changed, changed_extras = _sdxl(nodes, clip_l, clip_g, _tail_changed(words), _tail_changed(words))
    assert not torch.allclose(cond[..., :L_WIDTH], changed[..., :L_WIDTH])
    assert not torch.allclose(cond[..., L_WIDTH:], changed[..., L_WIDTH:])
    assert not torch.allclose(extras["pooled_output"], changed_extras["pooled_output"])


@pytest.mark.parametrize("recipe", ["standard", "longclip"])
def test_sdxl_encode_recipes_match_the_diffusers_read_outs(nodes, comfy, clip_l, clip_g, recipe):
    prompt = " ".join(_words(150, offset=2))
    cond, extras = _sdxl(nodes, clip_l, clip_g, prompt, prompt, recipe)
    ((expected, expected_extras),) = sdxl_conditioning(clip_l, clip_g, prompt, prompt, recipe=recipe)
    torch.testing.assert_close(cond, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(extras["pooled_output"], expected_extras["pooled_output"], rtol=1e-4, atol=1e-5)


def test_sdxl_encode_pads_the_shorter_prompt_with_empty_chunks(nodes, comfy, clip_l, clip_g, caplog):
    with caplog.at_level(logging.WARNING, logger="longclip_diffusers.comfyui"):
        cond, _ = _sdxl(nodes, clip_l, clip_g, " ".join(_words(300)), "a red cat")
    assert cond.shape == (1, 2 * 248, L_WIDTH + G_WIDTH)
    assert "2 chunks" in caplog.text


def test_sdxl_encode_refuses_long_clip_l_in_the_clip_g_slot(nodes, comfy, clip_l):
    with pytest.raises(
        IncompatibleEncoderError, match=f"clip_g encoder is {L_WIDTH} wide.*clip_g slot reads {G_WIDTH}"
    ):
        _sdxl(nodes, clip_l, clip_l, "a cat", "a cat")


def test_sdxl_encode_refuses_clip_g_without_projection(nodes, comfy, clip_l):
    tokenizer = tiny.tiny_clip_tokenizer()
    plain = tiny.tiny_text_encoder(tokenizer=tokenizer, hidden_size=G_WIDTH, num_heads=2)
    with pytest.raises(IncompatibleEncoderError, match="clip_g encoder has no text projection"):
        _sdxl(nodes, clip_l, fit_encoder_with_tokenizer(plain, tokenizer), "a cat", "a cat")


@pytest.fixture(scope="module")
def tulip_l():
    tokenizer = tiny.tiny_clip_tokenizer()
    model = convert_checkpoint(
        tiny.tiny_tulip_state_dict(width=L_WIDTH),
        kind="text",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return fit_encoder_with_tokenizer(model, tokenizer)


def test_sd15_encode_of_tulip_runs_in_one_piece_and_says_what_it_leaves_out(nodes, comfy, tulip_l, caplog):
    with caplog.at_level(logging.WARNING, logger="longclip_diffusers.comfyui"):
        cond, _ = _sd15(nodes, tulip_l, " ".join(_words(300)))
    assert cond.shape == (1, 248, L_WIDTH)
    assert "prompt weighting and embedding:name are read as plain text" in caplog.text
    assert "words past its 248 tokens are cut" in caplog.text


@pytest.mark.parametrize("recipe", ["standard", "longclip"])
def test_sdxl_conditioning_matches_what_a_patched_diffusers_pipeline_encodes(recipe):
    pipe = tiny.tiny_sdxl_pipeline()
    long_l = tiny.tiny_text_encoder(seed=4, tokenizer=pipe.tokenizer)
    apply_long_clip(pipe, fit_encoder_with_tokenizer(long_l, pipe.tokenizer).model, recipe=recipe)
    prompt = " ".join(_words(150, offset=3))
    embeds, _, pooled, _ = pipe.encode_prompt(prompt, device="cpu", do_classifier_free_guidance=False)
    conditioning = sdxl_conditioning(
        EncoderWithTokenizer(pipe.text_encoder, pipe.tokenizer),
        EncoderWithTokenizer(pipe.text_encoder_2, pipe.tokenizer_2),
        prompt,
        prompt,
        recipe=recipe,
    )
    ((cond, extras),) = conditioning
    assert cond.shape == embeds.shape == (1, 248, 64)
    torch.testing.assert_close(cond, embeds)
    torch.testing.assert_close(extras["pooled_output"], pooled)


def test_sd15_conditioning_matches_what_a_patched_diffusers_pipeline_encodes():
    pipe = tiny.tiny_sd_pipeline()
    long_l = tiny.tiny_text_encoder(seed=4, tokenizer=pipe.tokenizer)
    apply_long_clip(pipe, fit_encoder_with_tokenizer(long_l, pipe.tokenizer).model)
    prompt = " ".join(_words(150, offset=3))
    for clip_skip in (None, 1):
        embeds, _ = pipe.encode_prompt(prompt, "cpu", 1, False, clip_skip=clip_skip)
        ((cond, _),) = sd15_conditioning(EncoderWithTokenizer(pipe.text_encoder, pipe.tokenizer), prompt, clip_skip)
        torch.testing.assert_close(cond, embeds)


def test_public_encoders_return_tensors_without_gradient_history(clip_l, clip_g):
    cond, pooled = encode_sd15(clip_l, "a red cat")
    assert not cond.requires_grad and not pooled.requires_grad
    cond, pooled = encode_sdxl(clip_l, clip_g, "a red cat", "a red cat")
    assert not cond.requires_grad and not pooled.requires_grad


# --- Long-CLIP into a ComfyUI CLIP object ----------------------------------------------------


def into_clip(nodes, clip, encoder):
    return nodes.NODE_CLASS_MAPPINGS["LongCLIPIntoCLIP"]().apply(clip, encoder)[0]


def test_into_clip_rebuilds_sdxl_clip_with_long_clip_l_and_stretched_clip_g(nodes, comfy, clip_l):
    stock_g = tiny_g(seed=5)
    stock = stock_clip(comfy, tiny_l(seed=6), stock_g)
    stock.clip_layer(-2)
    rebuilt = into_clip(nodes, stock, clip_l)
    assert type(rebuilt.cond_stage_model).__name__ == "SDXLClipModel"
    sd = rebuilt.get_sd()
    assert torch.equal(sd[CLIP_L_POSITION], clip_l.model.embeddings.position_embedding.weight)
    stretched = sd["clip_g.transformer." + TEXT_POSITION_KEY]
    assert stretched.shape == (248, G_WIDTH)
    assert torch.equal(stretched[:20], stock_g.text_model.embeddings.position_embedding.weight[:20])
    assert torch.equal(sd["clip_g.transformer.text_projection.weight"], stock_g.text_projection.weight)
    assert rebuilt.tokenizer.clip_l.max_length == rebuilt.tokenizer.clip_g.max_length == 248
    assert rebuilt.layer_idx == -2
    assert stock.get_sd()[CLIP_L_POSITION].shape[0] == 77  # the CLIP passed in is left as it was


def test_into_clip_rebuilds_sd15_clip_with_only_long_clip_l(nodes, comfy, clip_l):
    rebuilt = into_clip(nodes, stock_clip(comfy, tiny_l(seed=6)), clip_l)
    assert type(rebuilt.cond_stage_model).__name__ == "SD1ClipModel"
    assert rebuilt.get_sd()[CLIP_L_POSITION].shape == (248, L_WIDTH)
    assert rebuilt.tokenizer.clip_l.max_length == 248


def test_into_clip_gives_flux_a_248_token_clip_l_and_leaves_t5_untouched(nodes, comfy, clip_l):
    t5 = tiny_t5()
    stock = stock_clip(comfy, tiny_l(seed=6), t5)
    rebuilt = into_clip(nodes, stock, clip_l)
    assert type(rebuilt.cond_stage_model).__name__ == "FluxClipModel"
    assert rebuilt.get_sd()[CLIP_L_POSITION].shape == (248, L_WIDTH)
    assert rebuilt.tokenizer.clip_l.max_length == 248
    for key, value in t5.items():
        assert torch.equal(rebuilt.get_sd()["t5xxl.transformer." + key], value)
    words = _words(150)
    ((cond, extras),) = rebuilt.encode_from_tokens_scheduled(rebuilt.tokenize(" ".join(words)))
    ((stock_cond, _),) = stock.encode_from_tokens_scheduled(stock.tokenize(" ".join(words)))
    torch.testing.assert_close(cond, stock_cond, rtol=0, atol=0)  # Flux's tokens come from T5 alone
    ((_, changed),) = rebuilt.encode_from_tokens_scheduled(rebuilt.tokenize(_tail_changed(words)))
    assert not torch.allclose(extras["pooled_output"], changed["pooled_output"])


def test_into_clip_gives_sd3_248_token_clip_l_and_clip_g_and_leaves_t5_untouched(nodes, comfy, clip_l):
    stock_g, t5 = tiny_g(seed=5), tiny_t5(width=G_WIDTH + L_WIDTH + 32)
    rebuilt = into_clip(nodes, stock_clip(comfy, tiny_l(seed=6), stock_g, t5), clip_l)
    assert type(rebuilt.cond_stage_model).__name__ == "SD3ClipModel"
    sd = rebuilt.get_sd()
    assert sd[CLIP_L_POSITION].shape == (248, L_WIDTH)
    assert torch.equal(
        sd["clip_g.transformer." + TEXT_POSITION_KEY][:20],
        stock_g.text_model.embeddings.position_embedding.weight[:20],
    )
    assert rebuilt.tokenizer.clip_l.max_length == rebuilt.tokenizer.clip_g.max_length == 248
    assert all(torch.equal(sd["t5xxl.transformer." + k], v) for k, v in t5.items())
    ((cond, _),) = rebuilt.encode_from_tokens_scheduled(rebuilt.tokenize("a red cat"))
    assert cond.shape[1] == 248 + 77


def _fc1(tower):
    return f"{tower}.transformer.text_model.encoder.layers.0.mlp.fc1.weight"


@pytest.mark.parametrize("tower", ["clip_l", pytest.param("clip_g", marks=pytest.mark.slow)])
def test_a_lora_loaded_before_into_clip_is_kept_and_equals_one_loaded_after(nodes, comfy, clip_l, tower):
    stock = (
        stock_clip(comfy, tiny_l(seed=6)) if tower == "clip_l" else stock_clip(comfy, tiny_l(seed=6), tiny_g(seed=5))
    )
    delta = 0.5 * torch.randn(stock.get_sd()[_fc1(tower)].shape)
    lora = stock.clone()
    assert lora.add_patches({_fc1(tower): ("diff", (delta,))}, 0.8) == [_fc1(tower)]
    prompt = " ".join(_words(60))

    def encode(clip):
        return clip.encode_from_tokens_scheduled(clip.tokenize(prompt))[0][0]

    kept = into_clip(nodes, lora, clip_l)
    without = into_clip(nodes, stock, clip_l)
    after = without.clone()
    after.add_patches({_fc1(tower): ("diff", (delta,))}, 0.8)
    assert not torch.allclose(encode(kept), encode(without))
    torch.testing.assert_close(encode(kept), encode(after), rtol=0, atol=0)


def test_into_clip_reads_the_original_weights_while_a_lora_clone_has_them_patched(nodes, comfy, clip_l):
    stock = stock_clip(comfy, tiny_l(seed=6))
    lora = stock.clone()
    lora.add_patches({_fc1("clip_l"): ("diff", (torch.ones(stock.get_sd()[_fc1("clip_l")].shape),))})
    lora.patcher.patch_model()  # ComfyUI leaves a loaded model patched in place
    try:
        rebuilt = into_clip(nodes, stock, clip_l)
    finally:
        lora.patcher.unpatch_model()
    torch.testing.assert_close(
        rebuilt.get_sd()[_fc1("clip_l")], clip_l.model.state_dict()["encoder.layers.0.mlp.fc1.weight"]
    )


def test_a_patch_on_a_replaced_position_table_is_refused_not_dropped(nodes, comfy, clip_l):
    stock = stock_clip(comfy, tiny_l(seed=6), tiny_g(seed=5))
    key = "clip_g.transformer." + TEXT_POSITION_KEY
    stock.add_patches({key: ("diff", (torch.ones(77, G_WIDTH),))})
    with pytest.raises(
        IncompatibleEncoderError,
        match=r"position_embedding.weight \(\[77, 128\] becomes \[248, 128\]\).*LoRA loader after",
    ):
        into_clip(nodes, stock, clip_l)


def test_clip_hooks_are_refused_not_dropped(nodes, comfy, clip_l):
    stock = stock_clip(comfy, tiny_l(seed=6))
    stock.patcher.forced_hooks = object()
    with pytest.raises(IncompatibleEncoderError, match="CLIP hooks .Set CLIP Hooks.*after Long-CLIP into CLIP"):
        into_clip(nodes, stock, clip_l)


def test_into_clip_refuses_an_encoder_of_another_width_before_calling_comfyui(nodes, comfy, monkeypatch):
    tokenizer = tiny.tiny_clip_tokenizer()
    narrow = fit_encoder_with_tokenizer(tiny.tiny_text_encoder(tokenizer=tokenizer, hidden_size=32), tokenizer)
    stock = stock_clip(comfy, tiny_l(seed=6))
    monkeypatch.setattr(comfy.sd, "load_text_encoder_state_dicts", None)
    with pytest.raises(IncompatibleEncoderError, match=f"is 32 wide, but the clip_l slot reads {L_WIDTH}"):
        into_clip(nodes, stock, narrow)


def test_a_bigg_wide_encoder_in_the_clip_l_slot_is_named_a_clip_g_encoder(nodes, comfy, clip_g):
    with pytest.raises(IncompatibleEncoderError, match="this is a clip_g encoder: Long-CLIP replaces clip_l"):
        into_clip(nodes, stock_clip(comfy, tiny_l(seed=6)), clip_g)


@pytest.mark.parametrize(
    "slot, width, message",
    [
        ("clip_l", 1280, "the width of OpenCLIP bigG .*this is a clip_g encoder"),
        (
            "clip_l",
            512,
            "the width of Long-CLIP-B.*use Long-CLIP-L .768 wide, BeichenZhang/LongCLIP-L., not Long-CLIP-B",
        ),
        ("clip_g", 768, "the width of Long-CLIP-L / CLIP-L.*load SDXL's second text encoder"),
    ],
)
def test_width_errors_name_what_was_connected_and_the_fix(slot, width, message, monkeypatch):
    monkeypatch.setattr(clip_state_dicts, "SLOT_WIDTHS", {"clip_l": 768, "clip_g": 1280})
    expected = clip_state_dicts.SLOT_WIDTHS[slot]
    with pytest.raises(IncompatibleEncoderError, match=message):
        check_slot_width(slot, width, expected)
    check_slot_width(slot, expected, expected)


def test_into_clip_refuses_a_clip_without_clip_l(nodes, comfy, clip_l):
    refiner = stock_clip(comfy, tiny_g(seed=5))
    with pytest.raises(IncompatibleEncoderError, match="SD1.x, SDXL, SD3 / SD3.5 or Flux.1.*SDXLRefinerClipModel"):
        into_clip(nodes, refiner, clip_l)


def test_into_clip_refuses_tulip(nodes, comfy, tulip_l):
    with pytest.raises(IncompatibleEncoderError, match="TULIP has rotary positions"):
        into_clip(nodes, stock_clip(comfy, tiny_l(seed=6)), tulip_l)


def test_into_clip_outside_comfyui_says_where_it_runs(nodes, monkeypatch, clip_l):
    monkeypatch.setitem(sys.modules, "comfy", None)
    monkeypatch.setitem(sys.modules, "comfy.sd", None)
    with pytest.raises(RuntimeError, match="run them inside ComfyUI"):
        into_clip(nodes, object(), clip_l)


# --- the example workflows and the real-ComfyUI check script -----------------------------------


@pytest.mark.parametrize("name", ["sd15", "sdxl", "flux"])
def test_example_workflow_wires_the_nodes_with_valid_widgets(nodes, name):
    import json

    workflow = json.loads((NODES_DIR / "workflows" / f"{name}.json").read_text())
    by_id = {node["id"]: node for node in workflow["nodes"]}
    for link_id, source, source_slot, target, target_slot, kind in workflow["links"]:
        assert by_id[source]["outputs"][source_slot]["type"] == kind
        assert link_id in by_id[source]["outputs"][source_slot]["links"]
        assert by_id[target]["inputs"][target_slot]["link"] == link_id
    ours = [node for node in workflow["nodes"] if node["type"] in nodes.NODE_CLASS_MAPPINGS]
    assert any(node["type"] in ("LongCLIPIntoCLIP", "LongCLIPTextEncodeSDXL") for node in ours)
    for node in ours:
        spec = nodes.NODE_CLASS_MAPPINGS[node["type"]].INPUT_TYPES()["required"]
        linked = {slot["name"] for slot in node["inputs"]}
        widgets = [(name, declared) for name, declared in spec.items() if name not in linked]
        assert len(node["widgets_values"]) == len(widgets), node["type"]
        for (name, declared), value in zip(widgets, node["widgets_values"]):
            if isinstance(declared[0], list) and name != "model":
                assert value in declared[0], (node["type"], name, value)
        assert {slot["type"] for slot in node["inputs"]} <= {"CLIP", "LONGCLIP_TEXT_ENCODER"}


def test_real_comfyui_check_says_what_it_needs_without_a_checkout(tmp_path):
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_DIR"}
    result = subprocess.run(
        [sys.executable, str(NODES_DIR / "check_real_comfyui.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "set COMFYUI_DIR to a ComfyUI checkout" in result.stderr
