"""Long-CLIP-G: OpenCLIP ViT-bigG/14 shaped models load, convert and drop into SDXL's second slot.

Every model is a tiny bigG-shaped one (``TINY_BIGG``: text heads of 64, a projection as wide as
the text tower, exact GELU, vision heads that are not 64 wide), built in code.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel, CLIPTextModelWithProjection, CLIPVisionConfig

from longclip_diffusers import apply_long_clip, load_clip_model, load_text_encoder
from longclip_diffusers.conversion.convert import convert_checkpoint
from longclip_diffusers.errors import IncompatibleEncoderError
from longclip_diffusers.io.export import save_clip_model, save_text_encoder
from longclip_diffusers.io.loading import CACHE_ENV
from longclip_diffusers.length.stretching import stretch_text_encoder
from longclip_diffusers.tiny import (
    TINY_BIGG,
    tiny_bigg_clip_model,
    tiny_clip_tokenizer,
    tiny_open_clip_bigg_checkpoint,
    tiny_sd_pipeline,
    tiny_sdxl_pipeline,
    tiny_sdxl_refiner_pipeline,
    tiny_text_config,
)
from tests.openai_reference import image_features, text_features

PROMPT = " ".join(["a red cat near a tall tree"] * 20)


def _ids(length: int = 12) -> torch.Tensor:
    tokenizer = tiny_clip_tokenizer(model_max_length=248)
    return tokenizer(["a red cat near a tall tree by the road"] * 2, return_tensors="pt").input_ids[:, :length]


def _clip_model_with_unset_text_projection(width: int) -> CLIPModel:
    """``CLIPConfig(projection_dim=width)`` with the text config's own ``projection_dim`` left
    at transformers' default of 512, as many hand-written configs leave it."""
    text = tiny_text_config(hidden_size=64, num_heads=1, num_layers=1).to_dict()
    del text["projection_dim"]
    vision = CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=1, image_size=32, patch_size=8
    )
    config = CLIPConfig(text_config=text, vision_config=vision.to_dict(), projection_dim=width)
    assert config.text_config.projection_dim == 512
    return CLIPModel(config).eval()


@pytest.mark.parametrize("writer", ["transformers", "export"])
def test_a_clip_model_folder_with_a_projection_other_than_512_loads_with_its_projection(tmp_path, writer):
    model = _clip_model_with_unset_text_projection(48)
    folder = tmp_path / "clip"
    if writer == "transformers":
        model.save_pretrained(folder)
    else:
        save_clip_model(model, folder)
    encoder = load_text_encoder(folder, with_projection=True)
    assert isinstance(encoder, CLIPTextModelWithProjection)
    assert encoder.text_projection.out_features == 48
    ids = _ids()
    with torch.no_grad():
        expected = model.get_text_features(input_ids=ids).pooler_output
        torch.testing.assert_close(encoder(input_ids=ids).text_embeds, expected)


def test_export_writes_the_projection_width_into_both_tower_configs(tmp_path):
    save_clip_model(_clip_model_with_unset_text_projection(48), tmp_path / "clip")
    config = json.loads((tmp_path / "clip" / "config.json").read_text())
    assert config["projection_dim"] == config["text_config"]["projection_dim"] == 48
    assert config["vision_config"]["projection_dim"] == 48


def _write_open_clip(folder, with_config: bool = True):
    state_dict, config = tiny_open_clip_bigg_checkpoint(vocab_size=49408)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state_dict, str(folder / "open_clip_model.safetensors"))
    if with_config:
        (folder / "open_clip_config.json").write_text(json.dumps(config))
    return folder / "open_clip_model.safetensors", state_dict


def test_an_open_clip_bigg_checkpoint_converts_with_gelu_and_the_head_widths_of_its_config(tmp_path):
    path, state_dict = _write_open_clip(tmp_path / "bigg")
    tokenizer = tiny_clip_tokenizer()
    model = convert_checkpoint(
        path, kind="full", ratio=1.0, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    assert model.config.text_config.hidden_act == model.config.vision_config.hidden_act == "gelu"
    assert model.config.text_config.num_attention_heads == TINY_BIGG["text_heads"]
    # 96 wide in heads of 48: the width // 64 rule would give 1 head
    assert model.config.vision_config.num_attention_heads == TINY_BIGG["vision_heads"]
    ids, pixels = _ids(), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        text = model.get_text_features(input_ids=ids).pooler_output
        image = model.get_image_features(pixel_values=pixels).pooler_output
    expected_text = text_features(state_dict, ids, TINY_BIGG["text_heads"], exact_gelu=True)["text_embeds"]
    expected_image = image_features(state_dict, pixels, TINY_BIGG["vision_heads"], exact_gelu=True)["image_embeds"]
    torch.testing.assert_close(text, expected_text, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(image, expected_image, atol=1e-5, rtol=1e-4)


def test_without_its_config_the_same_file_converts_as_openai_clip(tmp_path):
    path, _ = _write_open_clip(tmp_path / "bare", with_config=False)
    model = convert_checkpoint(path, kind="full", ratio=1.0)
    assert model.config.text_config.hidden_act == "quick_gelu"
    assert model.config.vision_config.num_attention_heads == 1


def test_an_open_clip_config_for_a_foreign_text_tower_is_refused(tmp_path):
    from longclip_diffusers.errors import CheckpointError

    path, _ = _write_open_clip(tmp_path / "bigg")
    config = json.loads((tmp_path / "bigg" / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"]["hf_model_name"] = "xlm-roberta-base"
    with pytest.raises(CheckpointError, match="Hugging Face text tower"):
        convert_checkpoint(path, open_clip_config=config)


def test_the_conversion_cache_follows_the_open_clip_config_beside_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path, _ = _write_open_clip(tmp_path / "bigg")
    assert load_clip_model(path, stretch=False).config.text_config.hidden_act == "gelu"
    config_file = tmp_path / "bigg" / "open_clip_config.json"
    config = json.loads(config_file.read_text())
    config["model_cfg"]["quick_gelu"] = True
    config_file.write_text(json.dumps(config))
    assert load_clip_model(path, stretch=False).config.text_config.hidden_act == "quick_gelu"


def test_hub_clip_folders_skip_open_clips_copy_of_the_weights(monkeypatch, tmp_path):
    from longclip_diffusers.io import loading

    calls = {}

    def snapshot_download(repo_id, allow_patterns=None, ignore_patterns=None, **kwargs):
        calls.update(allow=allow_patterns, ignore=ignore_patterns)
        return str(tmp_path)

    monkeypatch.setattr(loading, "snapshot_download", snapshot_download)
    loading.resolve_source("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k")
    assert "*.safetensors" in calls["allow"] and calls["ignore"] == ["open_clip_*"]


def _long_clip_g(seed: int = 3) -> CLIPTextModelWithProjection:
    """A tiny bigG-shaped text encoder with projection at 248 positions (a trained Long-CLIP-G
    stands here: its weights differ from the pipeline's own encoder)."""
    tokenizer = tiny_clip_tokenizer()
    clip = tiny_bigg_clip_model(seed=seed, tokenizer=tokenizer)
    encoder = CLIPTextModelWithProjection(clip.config.text_config)
    encoder.text_model.load_state_dict(clip.text_model.state_dict())
    encoder.text_projection.load_state_dict(clip.text_projection.state_dict())
    return stretch_text_encoder(encoder.eval())


def test_apply_long_clip_puts_long_clip_g_into_sdxls_second_slot_instead_of_stretching(tmp_path):
    long_g = _long_clip_g()
    save_text_encoder(long_g, tmp_path / "long_g", tokenizer=tiny_clip_tokenizer())
    pipe = tiny_sdxl_pipeline(bigg_shaped=True)
    long_l = stretch_text_encoder(pipe.text_encoder)
    apply_long_clip(pipe, long_l, text_encoder_2=str(tmp_path / "long_g"))
    encoder_2 = pipe.text_encoder_2
    assert isinstance(encoder_2, CLIPTextModelWithProjection)
    for name, tensor in long_g.state_dict().items():
        assert torch.equal(encoder_2.state_dict()[name], tensor), name
    _, _, pooled, _ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False)
    ids = pipe.tokenizer_2(PROMPT, padding="max_length", max_length=248, return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(pooled, long_g(input_ids=ids).text_embeds)


def test_a_long_clip_g_wider_than_the_refiners_slot_is_refused_and_the_refiner_kept():
    long_g = _long_clip_g()
    refiner = tiny_sdxl_refiner_pipeline()
    with pytest.raises(IncompatibleEncoderError, match="128 wide .* 32 wide .*1280 wide"):
        apply_long_clip(refiner, text_encoder_2=long_g)
    assert refiner.text_encoder_2.config.max_position_embeddings == 77


def test_long_clip_g_with_another_projection_width_is_refused_and_the_pipeline_kept(tmp_path):
    pipe = tiny_sdxl_pipeline(bigg_shaped=True)
    long_g = _long_clip_g()
    narrower = CLIPTextModelWithProjection(
        long_g.config.__class__(**{**long_g.config.to_dict(), "projection_dim": 64})
    )
    before = pipe.text_encoder_2
    with pytest.raises(IncompatibleEncoderError, match="projects to 64 features .* to 128"):
        apply_long_clip(pipe, stretch_text_encoder(pipe.text_encoder), text_encoder_2=narrower)
    assert pipe.text_encoder_2 is before


def test_text_encoder_2_on_a_pipeline_without_that_slot_is_an_error():
    with pytest.raises(IncompatibleEncoderError, match="has no text_encoder_2"):
        apply_long_clip(
            tiny_sd_pipeline(), stretch_text_encoder(tiny_sd_pipeline().text_encoder), text_encoder_2=_long_clip_g()
        )


# --- a tiny Long-CLIP-G trained end to end, in every place that takes one ----------------------


@pytest.fixture(scope="module")
def trained_g(tmp_path_factory):
    """A tiny bigG-shaped CLIP fine-tuned the single-GPU way (frozen vision, cached features,
    gradient caching), exported as a text encoder with projection at 248 positions."""
    from longclip_diffusers.cli.main import main as cli
    from longclip_diffusers.tiny import write_tiny_caption_set
    from longclip_diffusers.training.longclip import parse_longclip_args, train_longclip

    root = tmp_path_factory.mktemp("long_g")
    save_clip_model(tiny_bigg_clip_model(), root / "base", tokenizer=tiny_clip_tokenizer())
    captions = write_tiny_caption_set(root / "data", count=8, long_words=60)
    data = ["--base-model", str(root / "base"), "--data", str(captions), "--image-root", str(captions.parent)]
    assert (
        cli(["cache-image-features", *data, "--output-dir", str(root / "cache"), "--num-workers", "0", "--cpu"]) == 0
    )
    train_longclip(
        parse_longclip_args(
            [*data, "--output-dir", str(root / "long_g"), "--freeze-vision", "--image-features", str(root / "cache")]
            + ["--batch-size", "4", "--micro-batch", "2", "--max-steps", "2", "--lr", "1e-3", "--pca-dim", "2"]
            + ["--num-workers", "0", "--report-to", "none", "--cpu"]
        )
    )
    return root / "long_g"


@pytest.mark.slow  # trains a tiny Long-CLIP-G first (seconds)
def test_a_trained_tiny_long_clip_g_drops_into_sdxls_second_slot(trained_g):
    exported = load_text_encoder(trained_g, with_projection=True)
    assert exported.config.max_position_embeddings == 248
    pipe = tiny_sdxl_pipeline(bigg_shaped=True)
    pipe = apply_long_clip(pipe, stretch_text_encoder(pipe.text_encoder), text_encoder_2=str(trained_g))
    for name, tensor in exported.state_dict().items():
        assert torch.equal(pipe.text_encoder_2.state_dict()[name], tensor), name
    image = pipe(PROMPT, num_inference_steps=2, height=64, width=64, output_type="np").images
    assert image.shape == (1, 64, 64, 3)


@pytest.mark.slow  # trains a tiny Long-CLIP-G first (seconds)
def test_the_sdxl_pipeline_class_takes_long_clip_g(trained_g):
    from longclip_diffusers.drop_in.pipeline_classes import LongClipStableDiffusionXLPipeline

    stock = tiny_sdxl_pipeline(bigg_shaped=True)
    long = LongClipStableDiffusionXLPipeline.from_pipe(
        stock, long_clip=stretch_text_encoder(stock.text_encoder), long_clip_g=str(trained_g)
    )
    reference = load_text_encoder(trained_g, with_projection=True).state_dict()
    assert all(torch.equal(long.text_encoder_2.state_dict()[k], v) for k, v in reference.items())
    assert stock.text_encoder_2.config.max_position_embeddings == 77


@pytest.mark.slow  # trains a tiny Long-CLIP-G first (seconds)
def test_generate_long_clip_g_puts_it_into_text_encoder_2(trained_g, tmp_path, capsys, monkeypatch):
    from longclip_diffusers.cli.main import main as cli
    from longclip_diffusers.drop_in import swap_encoders

    pipe = tiny_sdxl_pipeline(bigg_shaped=True)
    pipe.save_pretrained(tmp_path / "sdxl")
    save_text_encoder(stretch_text_encoder(pipe.text_encoder), tmp_path / "long_l", tokenizer=pipe.tokenizer)
    swapped = {}
    original = swap_encoders.apply_long_clip

    def recording(pipe, source=None, **options):
        result = original(pipe, source, **options)
        swapped["encoder_2"] = result.text_encoder_2
        return result

    monkeypatch.setattr(swap_encoders, "apply_long_clip", recording)
    argv = ["generate", "--pipeline", str(tmp_path / "sdxl"), "--long-clip", str(tmp_path / "long_l")]
    argv += ["--long-clip-g", str(trained_g), "--prompt", PROMPT, "--steps", "1", "--height", "64", "--width", "64"]
    assert cli([*argv, "--device", "cpu", "--out", str(tmp_path / "image.png")]) == 0
    assert (tmp_path / "image.png").is_file()
    reference = load_text_encoder(trained_g, with_projection=True).state_dict()
    assert all(
        torch.equal(swapped["encoder_2"].state_dict()[k], v.to(swapped["encoder_2"].dtype))
        for k, v in reference.items()
    )


@pytest.mark.slow  # trains a tiny Long-CLIP-G first (seconds)
def test_the_gradio_studio_loads_long_clip_g(trained_g, tmp_path):
    from longclip_diffusers.demo.gradio_app import load_studio

    pipe = tiny_sdxl_pipeline(bigg_shaped=True)
    pipe.save_pretrained(tmp_path / "sdxl")
    save_text_encoder(stretch_text_encoder(pipe.text_encoder), tmp_path / "long_l", tokenizer=pipe.tokenizer)
    studio = load_studio(str(tmp_path / "sdxl"), str(tmp_path / "long_l"), device="cpu", long_clip_g=str(trained_g))
    reference = load_text_encoder(trained_g, with_projection=True).state_dict()
    encoder_2 = studio.long.text_encoder_2
    assert all(torch.equal(encoder_2.state_dict()[k], v.to(encoder_2.dtype)) for k, v in reference.items())
    assert studio.stock.text_encoder_2.config.max_position_embeddings == 77
    assert str(trained_g) in studio.title


@pytest.mark.slow  # trains a tiny Long-CLIP-G first (seconds)
def test_the_comfyui_loaders_clip_g_slot_takes_long_clip_g_as_trained(trained_g):
    from tests.test_comfyui_nodes import NODES_DIR, load_like_comfyui

    nodes = load_like_comfyui(NODES_DIR)
    loader = nodes.NODE_CLASS_MAPPINGS["LongCLIPTextEncoderLoader"]()
    (encoder,) = loader.load(nodes.model_folders.TYPED_SOURCE, str(trained_g), "clip_g")
    reference = load_text_encoder(trained_g, with_projection=True).state_dict()
    assert encoder.positions == 248
    assert all(torch.equal(encoder.model.state_dict()[k], v) for k, v in reference.items())
