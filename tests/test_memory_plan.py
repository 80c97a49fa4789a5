"""``train_longclip.py --dry-run``: the memory plan per process, from the model's real shapes,
with nothing trained or written."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

from longclip_diffusers.io.export import save_clip_model
from longclip_diffusers.tiny import tiny_bigg_clip_model, tiny_clip_tokenizer, tiny_open_clip_bigg_checkpoint
from longclip_diffusers.training import ContrastiveFeatures, prepare_longclip_model
from longclip_diffusers.training.longclip import main, parse_longclip_args
from longclip_diffusers.training.memory_plan import GIB, memory_plan
from longclip_diffusers.training.text_only import load_text_only_clip

#: OpenCLIP ViT-bigG/14 as SDXL's text_encoder_2 and laion's CLIPModel configure it.
BIGG = CLIPConfig(
    text_config=CLIPTextConfig(
        vocab_size=49408,
        hidden_size=1280,
        intermediate_size=5120,
        num_hidden_layers=32,
        num_attention_heads=20,
        max_position_embeddings=77,
        projection_dim=1280,
        hidden_act="gelu",
    ).to_dict(),
    vision_config=CLIPVisionConfig(
        hidden_size=1664,
        intermediate_size=8192,
        num_hidden_layers=48,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=1280,
        hidden_act="gelu",
    ).to_dict(),
    projection_dim=1280,
)
#: The single-GPU Long-CLIP-G recipe of the README.
SINGLE_GPU = [
    "--freeze-vision",
    "--image-features",
    "cache",
    "--batch-size",
    "1024",
    "--micro-batch",
    "128",
    "--gradient-checkpointing",
]


@pytest.fixture(scope="module")
def bigg_config_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bigg")
    BIGG.save_pretrained(folder)  # the config only: the plan never needs the weights
    return folder


def _args(base, *extra: str):
    return parse_longclip_args(["--base-model", str(base), "--data", "d.json", "--output-dir", "o", *extra])


def test_dry_run_reports_a_single_gpu_bigg_plan_from_real_shapes_and_writes_nothing(bigg_config_dir, tmp_path, capsys):
    output = tmp_path / "out"
    argv = ["--base-model", str(bigg_config_dir), "--data", str(tmp_path / "absent.json"), "--output-dir", str(output)]
    assert main([*argv, *SINGLE_GPU, "--gpu-memory", "80", "--dry-run"]) == 0
    printed = capsys.readouterr().out.splitlines()
    plan = json.loads(printed[-1])
    # bigG's text tower (694.7M) plus the 171 position rows stretching adds
    assert plan["text"]["parameters"] == pytest.approx(694.9e6, rel=1e-3)
    assert plan["vision"]["parameters"] == pytest.approx(1.845e9, rel=1e-3) and not plan["vision"]["loaded"]
    assert plan["fits"] is True and plan["total_gib"] < 40
    assert any(line.startswith("fits 80 GiB: yes") for line in printed)
    assert not output.exists()


def test_the_same_batch_without_cache_and_micro_batch_does_not_fit(bigg_config_dir):
    plan = memory_plan(_args(bigg_config_dir, "--batch-size", "1024", "--gpu-memory", "80"))
    assert plan.vision.loaded and plan.vision.trainable and plan.fits is False


def test_the_parameter_counts_are_the_prepared_models(tmp_path):
    save_clip_model(tiny_bigg_clip_model(), tmp_path / "base", tokenizer=tiny_clip_tokenizer())
    plan = memory_plan(_args(tmp_path / "base", "--freeze-vision"))
    model = prepare_longclip_model(tiny_bigg_clip_model(), keep=20, ratio=4.0, freeze_vision=True)
    named = dict(model.named_parameters())
    text = {n: p for n, p in named.items() if not n.startswith(("vision_model.", "visual_projection."))}
    assert plan.text.trainable == sum(p.numel() for p in text.values() if p.requires_grad)
    assert plan.vision.parameters == sum(p.numel() for n, p in named.items() if n not in text)
    assert plan.vision.trainable == 0
    assert plan.gradients_gib * GIB == 4 * plan.text.trainable
    assert plan.optimizer_gib * GIB == 8 * plan.text.trainable


def test_the_activation_term_is_what_autograd_keeps_for_the_backward_pass(tmp_path):
    """float32, text tower only, every caption at all 248 positions: the plan's activations
    against the bytes of the tensors autograd saves in the forward pass."""
    save_clip_model(tiny_bigg_clip_model(), tmp_path / "base", tokenizer=tiny_clip_tokenizer())
    rows = 6
    extra = ["--freeze-vision", "--image-features", "c", "--short-loss-weight", "0", "--mixed-precision", "no"]
    plan = memory_plan(_args(tmp_path / "base", "--batch-size", str(rows), *extra))
    model = prepare_longclip_model(load_text_only_clip(tmp_path / "base"), keep=20, ratio=4.0, freeze_vision=True)
    eos = tiny_clip_tokenizer().eos_token_id
    ids = torch.randint(0, eos - 1, (rows, 248))
    ids[:, -1] = eos
    storages: dict[int, int] = {}

    def keep(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        ContrastiveFeatures(model, eos)(torch.randn(rows, 128), ids)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    measured = sum(size for pointer, size in storages.items() if pointer not in weights)
    assert measured == pytest.approx(plan.activations_gib * GIB, rel=0.05)


def test_micro_batching_bounds_the_activations_by_the_micro_batch(bigg_config_dir):
    whole = memory_plan(_args(bigg_config_dir, "--freeze-vision", "--image-features", "c", "--batch-size", "1024"))
    micro = memory_plan(
        _args(
            bigg_config_dir, "--freeze-vision", "--image-features", "c", "--batch-size", "1024", "--micro-batch", "64"
        )
    )
    assert micro.activations_gib == pytest.approx(whole.activations_gib / 16, rel=0.01)
    assert (micro.parameters_gib, micro.optimizer_gib) == (whole.parameters_gib, whole.optimizer_gib)


def test_fsdp_splits_parameters_gradients_and_optimizer_over_the_processes(bigg_config_dir):
    ddp = memory_plan(_args(bigg_config_dir, "--plan-processes", "8", "--plan-sharding", "none"))
    fsdp = memory_plan(_args(bigg_config_dir, "--plan-processes", "8", "--plan-sharding", "fsdp"))
    assert fsdp.optimizer_gib == pytest.approx(ddp.optimizer_gib / 8)
    assert fsdp.gradients_gib == pytest.approx(ddp.gradients_gib / 8)
    assert ddp.parameters_gib / 8 < fsdp.parameters_gib < ddp.parameters_gib / 4


def test_an_open_clip_checkpoint_is_planned_from_its_header_like_its_converted_folder(tmp_path):
    state_dict, config = tiny_open_clip_bigg_checkpoint(vocab_size=len(tiny_clip_tokenizer()))
    save_file(state_dict, str(tmp_path / "open_clip_model.safetensors"))
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    from_file = memory_plan(_args(tmp_path / "open_clip_model.safetensors"))
    from longclip_diffusers.conversion.convert import convert_checkpoint

    tokenizer = tiny_clip_tokenizer()
    converted = convert_checkpoint(
        tmp_path / "open_clip_model.safetensors",
        ratio=1.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    save_clip_model(converted, tmp_path / "converted")
    from_folder = memory_plan(_args(tmp_path / "converted"))
    assert from_file == from_folder
