"""A real-size Long-CLIP L/14 checkpoint (random weights, ~430M parameters, text + vision, both
position tables) converts through the CLI, and transformers loads the result as it is on disk.

The only slow test (tens of seconds): shapes, key names and file sizes of a real model are what
it checks. It keeps one full copy of the weights in memory at a time."""

from __future__ import annotations

import gc

import pytest
import torch
from safetensors import safe_open
from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer

from longclip_diffusers.cli.main import main
from longclip_diffusers.compat import text_transformer
from longclip_diffusers.tiny import tiny_clip_tokenizer, tiny_openai_state_dict

# Seconds each, not milliseconds: left out of the quick loop (-m "not slow and not browser").
pytestmark = pytest.mark.slow

# ViT-L/14 (docs/checkpoint-format.md): text 768 wide, 12 layers; vision 1024 wide, 24 layers,
# patch 14 at 224 px; embedding 768; CLIP's 49408-token vocabulary; Long-CLIP's 248 positions.
L14 = dict(
    width=768,
    layers=12,
    vision_width=1024,
    vision_layers=24,
    patch=14,
    image_size=224,
    embed_dim=768,
    context=248,
    vocab_size=49408,
    two_position_tables=True,
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Build the checkpoint, keep a few reference tensors, free it, convert it with the CLI."""
    work = tmp_path_factory.mktemp("l14")
    tiny_clip_tokenizer().save_pretrained(work / "tokenizer")
    state_dict = tiny_openai_state_dict(**L14)
    reference = {
        "positions": state_dict["positional_embedding"][:20].clone(),
        "positions_res": state_dict["positional_embedding_res"][20:].clone(),
        "q_proj": state_dict["transformer.resblocks.11.attn.in_proj_weight"][:768].clone(),
        "vision_v_proj": state_dict["visual.transformer.resblocks.23.attn.in_proj_weight"][2048:].clone(),
        "text_projection": state_dict["text_projection"].clone(),
    }
    torch.save(state_dict, work / "longclip-L.pt")
    del state_dict
    gc.collect()

    out = work / "out"
    code = main(["convert", str(work / "longclip-L.pt"), str(out), "--tokenizer", str(work / "tokenizer")])
    (work / "longclip-L.pt").unlink()
    gc.collect()
    assert code == 0
    return out, reference


def test_real_size_keys_on_disk_are_in_the_text_model_vision_model_layout(converted):
    out, _ = converted
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        keys = set(weights.keys())
        assert weights.get_slice("text_model.embeddings.position_embedding.weight").get_shape() == [248, 768]
        patches = weights.get_slice("vision_model.embeddings.patch_embedding.weight")
        assert patches.get_shape() == [1024, 3, 14, 14]
    assert "text_model.encoder.layers.11.self_attn.q_proj.weight" in keys
    assert "vision_model.encoder.layers.23.mlp.fc2.weight" in keys
    assert {"text_projection.weight", "visual_projection.weight", "logit_scale"} <= keys
    towers = ("text_model.", "vision_model.", "text_projection.", "visual_projection.", "logit_scale")
    assert all(key.startswith(towers) for key in keys)


def test_real_size_output_loads_as_clip_model_with_the_checkpoint_weights(converted):
    out, reference = converted
    model = CLIPModel.from_pretrained(out)
    text, vision = model.config.text_config, model.config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads) == (768, 12, 12)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (1024, 24, 16)
    assert (vision.patch_size, vision.image_size, model.config.projection_dim) == (14, 224, 768)
    assert text.hidden_act == "quick_gelu" and text.max_position_embeddings == 248

    table = model.text_model.embeddings.position_embedding.weight
    assert torch.equal(table[:20], reference["positions"])
    assert torch.equal(table[20:], reference["positions_res"])
    assert torch.equal(model.text_model.encoder.layers[11].self_attn.q_proj.weight, reference["q_proj"])
    last_vision_block = model.vision_model.encoder.layers[23]
    assert torch.equal(last_vision_block.self_attn.v_proj.weight, reference["vision_v_proj"])
    assert torch.equal(model.text_projection.weight, reference["text_projection"].T)
    del model
    gc.collect()


def test_real_size_output_loads_as_clip_text_model(converted):
    out, reference = converted
    encoder = CLIPTextModel.from_pretrained(out)
    embeddings = text_transformer(encoder).embeddings
    assert encoder.config.max_position_embeddings == 248
    assert torch.equal(embeddings.position_embedding.weight[:20], reference["positions"])
    tokenizer = CLIPTokenizer.from_pretrained(out)
    assert tokenizer.model_max_length == 248
    ids = tokenizer(["a red cat"], return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = encoder(ids).last_hidden_state
    assert hidden.shape == (1, ids.shape[1], 768) and torch.isfinite(hidden).all()
    del encoder
    gc.collect()
