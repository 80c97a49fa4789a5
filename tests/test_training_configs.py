"""The accelerate config files of the Long-CLIP-G recipes load, and say what the README says."""

from __future__ import annotations

from pathlib import Path

from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from transformers.models.clip import modeling_clip

from longclip_diffusers.training.longclip import parse_longclip_args

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def test_the_single_gpu_config_is_one_bf16_process():
    config = load_config_from_file(str(CONFIGS / "single_gpu.yaml"))
    assert (config.distributed_type, config.num_processes, config.mixed_precision) == (DistributedType.NO, 1, "bf16")


def test_the_multi_gpu_config_fully_shards_each_clip_layer_with_the_fsdp_the_tests_run():
    config = load_config_from_file(str(CONFIGS / "multi_gpu_fsdp.yaml"))
    fsdp = config.fsdp_config
    assert config.distributed_type == DistributedType.FSDP and config.mixed_precision == "bf16"
    assert (fsdp["fsdp_version"], fsdp["fsdp_sharding_strategy"]) == (1, "FULL_SHARD")
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert hasattr(modeling_clip, fsdp["fsdp_transformer_layer_cls_to_wrap"])
    assert fsdp["fsdp_use_orig_params"] is True  # units mix frozen and trained parameters


def test_the_dry_run_plans_for_the_launchers_processes_and_sharding(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    args = parse_longclip_args(["--base-model", "b", "--data", "d.json", "--output-dir", "o"])
    assert (args.plan_processes, args.plan_sharding) == (8, "fsdp")
