"""Long-CLIP-G scale features across processes: gradient caching on 2 processes, fully sharded
(FSDP) gradient caching, and the feature cache shared by 2 processes.

Two CPU processes are started with ``torchrun`` (accelerate starts one process on a machine
without MPI; docs of the existing distributed test). The model is a tiny bigG-shaped CLIP with
both towers trained and the short-caption loss on (global PCA, 2 components).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from safetensors import safe_open
from training_helpers import run_launched, tiny_training_argv
from transformers import CLIPModel

from longclip_diffusers import stretch_text_encoder
from longclip_diffusers.io.export import save_clip_model
from longclip_diffusers.tiny import tiny_bigg_clip_model, tiny_clip_tokenizer, write_tiny_caption_set
from longclip_diffusers.training.feature_cache import unit_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "training" / "train_longclip.py"
CACHE = ROOT / "training" / "cache_image_features.py"
FSDP_WORKER = Path(__file__).resolve().parent / "fsdp_worker.py"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    save_clip_model(tiny_bigg_clip_model(), root / "base", tokenizer=tiny_clip_tokenizer())
    captions = write_tiny_caption_set(root / "data", count=16, long_words=40)
    return root, captions


def _run(processes: int, script: Path, *arguments: str) -> subprocess.CompletedProcess:
    done = run_launched(processes, script, *arguments, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _train(setup, name: str, processes: int, batch_size: int, *extra: str) -> Path:
    root, captions = setup
    output = root / name
    _run(
        processes,
        TRAIN,
        *tiny_training_argv(
            root / "base", captions, output, *extra, image_root=captions.parent, batch_size=batch_size
        ),
    )
    return output


def _losses(output: Path) -> list[float]:
    return json.loads((output / "training_summary.json").read_text())["losses"]


def test_two_processes_of_8_with_micro_batch_4_train_like_one_pass_over_16(setup):
    single = _train(setup, "single", 1, 16)
    micro = _train(setup, "micro", 2, 8, "--micro-batch", "4")
    assert _losses(micro) == pytest.approx(_losses(single), rel=1e-5)
    base = stretch_text_encoder(CLIPModel.from_pretrained(setup[0] / "base")).state_dict()
    one, two = CLIPModel.from_pretrained(single).state_dict(), CLIPModel.from_pretrained(micro).state_dict()
    for key, start in base.items():
        if key.endswith("k_proj.bias"):
            continue  # true gradient 0: Adam turns its rounding noise into full-size steps in either run
        update = (one[key] - start).norm()
        assert (two[key] - one[key]).norm() <= 1e-3 * update + 1e-7, key
    assert (
        one["vision_model.encoder.layers.0.mlp.fc1.weight"] - base["vision_model.encoder.layers.0.mlp.fc1.weight"]
    ).norm() > 1e-3


def test_gradient_caching_on_a_fully_sharded_model_gives_the_one_pass_gradients():
    """PyTorch's FSDP wrapper, full sharding, 2 CPU processes over gloo (tests/fsdp_worker.py):
    accelerate itself runs FSDP on GPUs only, so the worker calls FSDP's API as accelerate does.
    The export step gathers the whole weights on the main process."""
    done = _run(2, FSDP_WORKER)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sharded"] is True
    assert result["worst"] < 1e-5
    assert result["export_whole"] is True


def test_two_processes_share_the_feature_cache_units_and_write_what_one_process_writes(setup):
    root, captions = setup
    common = ["--base-model", str(root / "base"), "--data", str(captions), "--image-root", str(captions.parent)]
    common += ["--samples-per-shard", "5", "--num-workers", "0", "--cpu", "--dtype", "float32"]
    _run(1, CACHE, *common, "--output-dir", str(root / "cache1"))
    _run(2, CACHE, *common, "--output-dir", str(root / "cache2"))
    assert (root / "cache1" / "manifest.json").read_text() == (root / "cache2" / "manifest.json").read_text()
    for unit in range(4):
        with (
            safe_open(str(unit_file(root / "cache1", unit)), framework="pt") as one,
            safe_open(str(unit_file(root / "cache2", unit)), framework="pt") as two,
        ):
            assert one.metadata() == two.metadata()
            assert (one.get_tensor("features") - two.get_tensor("features")).abs().max() < 1e-5
