"""The ComfyUI nodes in ``demos/comfyui``, loaded the way ComfyUI loads a custom-node folder.

ComfyUI itself is not installed here: ``folder_paths`` is the stand-in in ``tests/comfyui_stubs``
and ``comfy.sd`` a recorder built in the test; the encoders are tiny random models at 248
positions (SDXL widths here are 32 + 48 instead of 768 + 1280).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from longclip_diffusers import IncompatibleEncoderError, save_text_encoder, tiny
from longclip_diffusers.comfyui.clip_state_dicts import TOWER_PREFIXES
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
L_WIDTH, G_WIDTH = 32, 48


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
    """The stand-in ``folder_paths`` with ComfyUI's two text-encoder folders under tmp_path."""
    spec = importlib.util.spec_from_file_location("folder_paths", STUBS_DIR / "folder_paths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folders = {name: tmp_path / "models" / name for name in ("text_encoders", "clip", "embeddings")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    module.folder_names_and_paths.update(
        {
            "text_encoders": ([str(folders["text_encoders"]), str(folders["clip"])], module.supported_pt_extensions),
            "embeddings": ([str(folders["embeddings"])], module.supported_pt_extensions),
        }
    )
    monkeypatch.setitem(sys.modules, "folder_paths", module)
    return folders


@pytest.fixture(scope="module")
def clip_l():
    tokenizer = tiny.tiny_clip_tokenizer()
    return fit_encoder_with_tokenizer(tiny.tiny_text_encoder(tokenizer=tokenizer, hidden_size=L_WIDTH), tokenizer)


@pytest.fixture(scope="module")
def clip_g():
    tokenizer = tiny.tiny_clip_tokenizer(pad_token="!")
    model = tiny.tiny_text_encoder(True, seed=1, tokenizer=tokenizer, hidden_size=G_WIDTH, projection_dim=40)
    return fit_encoder_with_tokenizer(model, tokenizer)


def _words(count: int, offset: int = 0) -> list[str]:
    return [tiny.TINY_WORDS[(i + offset) % len(tiny.TINY_WORDS)] for i in range(count)]


def _tail_changed(words: list[str], at: int = 120) -> str:
    changed = list(words)
    changed[at] = "dragon" if changed[at] != "dragon" else "castle"
    return " ".join(changed)


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


# --- the loader and ComfyUI's model folders -------------------------------------------------


def test_loader_offers_typed_source_only_outside_comfyui(nodes, monkeypatch):
    monkeypatch.setitem(sys.modules, "folder_paths", None)  # import folder_paths -> ImportError
    choices = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"].INPUT_TYPES()["required"]["model"][0]
    assert choices == [nodes.model_folders.TYPED_SOURCE]


def test_loader_lists_files_of_text_encoders_and_clip_folders(nodes, folder_paths):
    (folder_paths["clip"] / "longclip-L.pt").write_bytes(b"")
    (folder_paths["text_encoders"] / "clip_g.safetensors").write_bytes(b"")
    (folder_paths["text_encoders"] / "notes.txt").write_text("not a model")
    choices = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"].INPUT_TYPES()["required"]["model"][0]
    assert choices == [nodes.model_folders.TYPED_SOURCE, "clip_g.safetensors", "longclip-L.pt"]


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
    bigg = tiny.tiny_text_encoder(True, seed=3, tokenizer=tokenizer, hidden_size=G_WIDTH)
    save_text_encoder(bigg, tmp_path / "text_encoder_2", tokenizer=tokenizer)
    loader = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"]()
    (encoder,) = loader.load(nodes.model_folders.TYPED_SOURCE, str(tmp_path / "text_encoder_2"), "clip_g")
    table = encoder.model.text_model.embeddings.position_embedding.weight
    assert encoder.positions == 248 and table.shape == (248, G_WIDTH)
    assert torch.equal(table[:20], bigg.text_model.embeddings.position_embedding.weight[:20])
    assert encoder.tokenizer.model_max_length == 248
    assert encoder.model.text_projection is not None


def test_loader_without_a_choice_or_path_says_what_to_pick(nodes):
    loader = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"]()
    with pytest.raises(ValueError, match="pick a file from the list, or type a path"):
        loader.load(nodes.model_folders.TYPED_SOURCE, "  ", "clip_l")


def test_loader_reports_a_file_missing_from_the_folders(nodes, folder_paths):
    loader = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"]()
    with pytest.raises(FileNotFoundError, match="gone.safetensors"):
        loader.load("gone.safetensors", "", "clip_l")


# --- the encode nodes ----------------------------------------------------------------------


def test_sd15_encode_gives_248_token_conditioning_that_reads_past_token_77(nodes, clip_l):
    node = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncodeSD15"]()
    words = _words(150)
    (conditioning,) = node.encode(clip_l, " ".join(words), 0)
    ((cond, extras),) = conditioning
    assert cond.shape == (1, 248, L_WIDTH) and cond.dtype == torch.float32
    assert extras["pooled_output"].shape == (1, L_WIDTH)
    ((changed, changed_extras),) = node.encode(clip_l, _tail_changed(words), 0)[0]
    assert not torch.allclose(cond, changed)
    assert not torch.allclose(extras["pooled_output"], changed_extras["pooled_output"])


def test_sd15_encode_clip_skip_reads_an_earlier_layer(nodes, clip_l):
    node = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncodeSD15"]()
    prompt = " ".join(_words(30))
    last = node.encode(clip_l, prompt, 0)[0][0][0]
    skipped = node.encode(clip_l, prompt, 1)[0][0][0]
    assert last.shape == skipped.shape and not torch.allclose(last, skipped)


def _sdxl(nodes, clip_l, clip_g, text_g, text_l, recipe="standard"):
    node = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncodeSDXL"]()
    (conditioning,) = node.encode(clip_l, clip_g, 1152, 896, 16, 8, 1024, 768, text_g, text_l, recipe)
    ((cond, extras),) = conditioning
    return cond, extras


def test_sdxl_encode_concatenates_both_248_token_encoders_with_size_fields(nodes, clip_l, clip_g):
    prompt = " ".join(_words(150))
    cond, extras = _sdxl(nodes, clip_l, clip_g, prompt, prompt)
    assert cond.shape == (1, 248, clip_l.width + clip_g.width) == (1, 248, L_WIDTH + G_WIDTH)
    assert extras["pooled_output"].shape == (1, 40)
    assert {k: v for k, v in extras.items() if k != "pooled_output"} == {
        "width": 1152,
        "height": 896,
        "crop_w": 16,
        "crop_h": 8,
        "target_width": 1024,
        "target_height": 768,
    }


def test_sdxl_encode_reads_words_past_token_77_in_both_encoders_and_pooled(nodes, clip_l, clip_g):
    words = _words(150, offset=7)
    cond, extras = _sdxl(nodes, clip_l, clip_g, " ".join(words), " ".join(words))
    changed, changed_extras = _sdxl(nodes, clip_l, clip_g, _tail_changed(words), _tail_changed(words))
    assert not torch.allclose(cond[..., :L_WIDTH], changed[..., :L_WIDTH])
    assert not torch.allclose(cond[..., L_WIDTH:], changed[..., L_WIDTH:])
    assert not torch.allclose(extras["pooled_output"], changed_extras["pooled_output"])


def test_sdxl_encode_recipes_read_different_layers(nodes, clip_l, clip_g):
    prompt = " ".join(_words(40))
    standard, _ = _sdxl(nodes, clip_l, clip_g, prompt, prompt, "standard")
    longclip, _ = _sdxl(nodes, clip_l, clip_g, prompt, prompt, "longclip")
    assert standard.shape == longclip.shape and not torch.allclose(standard, longclip)


def test_sdxl_encode_refuses_clip_g_without_projection(nodes, clip_l):
    with pytest.raises(IncompatibleEncoderError, match="clip_g encoder has no text projection"):
        _sdxl(nodes, clip_l, clip_l, "a cat", "a cat")


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


# --- Long-CLIP into a ComfyUI CLIP object ----------------------------------------------------


class StandInCLIP:
    """The part of ``comfy.sd.CLIP`` the node uses: ``get_sd()``, ``layer_idx``, ``clip_layer``."""

    def __init__(self, towers: dict, layer_idx=None):
        self.towers = towers
        self.layer_idx = layer_idx

    def get_sd(self):
        return {
            TOWER_PREFIXES[tower] + key: value
            for tower, model in self.towers.items()
            for key, value in prefixed_state_dict(model).items()
        }

    def clip_layer(self, layer_idx):
        self.layer_idx = layer_idx


@pytest.fixture
def comfy_sd(monkeypatch):
    """A stand-in ``comfy.sd`` that records what the node hands to ComfyUI's text-encoder loader."""
    calls = []
    sd = types.ModuleType("comfy.sd")
    sd.CLIPType = types.SimpleNamespace(STABLE_DIFFUSION="stable_diffusion")

    def load_text_encoder_state_dicts(state_dicts=(), embedding_directory=None, clip_type=None, model_options=None):
        calls.append({"state_dicts": state_dicts, "embedding_directory": embedding_directory, "clip_type": clip_type})
        return StandInCLIP({})

    sd.load_text_encoder_state_dicts = load_text_encoder_state_dicts
    comfy = types.ModuleType("comfy")
    comfy.sd = sd
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.sd", sd)
    return calls


def test_into_clip_rebuilds_sdxl_clip_with_long_clip_l_and_stretched_clip_g(nodes, folder_paths, comfy_sd, clip_l):
    tokenizer = tiny.tiny_clip_tokenizer(pad_token="!")
    stock_g = tiny.tiny_text_encoder(True, seed=5, tokenizer=tokenizer, hidden_size=G_WIDTH)
    stock_l = tiny.tiny_text_encoder(seed=6, tokenizer=tiny.tiny_clip_tokenizer(), hidden_size=L_WIDTH)
    clip = StandInCLIP({"clip_l": stock_l, "clip_g": stock_g}, layer_idx=-2)
    (rebuilt,) = nodes.NODE_CLASS_MAPPINGS["LongCLIPIntoCLIP"]().apply(clip, clip_l)

    (call,) = comfy_sd
    assert call["clip_type"] == "stable_diffusion"
    assert call["embedding_directory"] == [str(folder_paths["embeddings"])]
    long_l, stretched_g = call["state_dicts"]
    assert torch.equal(long_l[TEXT_POSITION_KEY], clip_l.model.embeddings.position_embedding.weight)
    stock_table = stock_g.text_model.embeddings.position_embedding.weight
    assert stretched_g[TEXT_POSITION_KEY].shape == (248, G_WIDTH)
    assert torch.equal(stretched_g[TEXT_POSITION_KEY][:20], stock_table[:20])
    assert torch.equal(stretched_g["text_projection.weight"], stock_g.text_projection.weight)
    assert rebuilt.layer_idx == -2


def test_into_clip_rebuilds_sd15_clip_with_only_long_clip_l(nodes, folder_paths, comfy_sd, clip_l):
    stock_l = tiny.tiny_text_encoder(seed=6, tokenizer=tiny.tiny_clip_tokenizer(), hidden_size=L_WIDTH)
    nodes.NODE_CLASS_MAPPINGS["LongCLIPIntoCLIP"]().apply(StandInCLIP({"clip_l": stock_l}), clip_l)
    ((only,),) = [call["state_dicts"] for call in comfy_sd]
    assert only[TEXT_POSITION_KEY].shape == (248, L_WIDTH)


def test_into_clip_refuses_encoder_of_other_width_before_calling_comfyui(nodes, folder_paths, comfy_sd, clip_g):
    stock_l = tiny.tiny_text_encoder(seed=6, tokenizer=tiny.tiny_clip_tokenizer(), hidden_size=L_WIDTH)
    with pytest.raises(IncompatibleEncoderError, match=f"{G_WIDTH} wide but this CLIP's clip_l is {L_WIDTH} wide"):
        nodes.NODE_CLASS_MAPPINGS["LongCLIPIntoCLIP"]().apply(StandInCLIP({"clip_l": stock_l}), clip_g)
    assert comfy_sd == []


def test_into_clip_outside_comfyui_says_where_it_runs(nodes, monkeypatch, clip_l):
    monkeypatch.setitem(sys.modules, "comfy", None)
    with pytest.raises(RuntimeError, match="run it inside ComfyUI"):
        nodes.NODE_CLASS_MAPPINGS["LongCLIPIntoCLIP"]().apply(StandInCLIP({}), clip_l)


def test_public_encoders_return_tensors_without_gradient_history(clip_l, clip_g):
    cond, pooled = encode_sd15(clip_l, "a red cat")
    assert not cond.requires_grad and not pooled.requires_grad
    cond, pooled = encode_sdxl(clip_l, clip_g, "a red cat", "a red cat")
    assert not cond.requires_grad and not pooled.requires_grad
