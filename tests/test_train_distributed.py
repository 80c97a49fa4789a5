"""Two processes with batch B train exactly like one process with batch 2B.

``accelerate launch --cpu --num_processes 2`` starts one process on a machine without MPI, so the
two CPU processes are started with ``torchrun`` (REFERENCE.md section 8); ``Accelerator`` then
runs DDP over gloo. The learning rate is large so that the updates are far above rounding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import CLIPModel

from longclip_diffusers import stretch_text_encoder
from longclip_diffusers.export import save_clip_model
from longclip_diffusers.tiny import tiny_clip_model, tiny_clip_tokenizer, write_tiny_caption_set

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "train_longclip.py"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    save_clip_model(tiny_clip_model(), root / "base", tokenizer=tiny_clip_tokenizer())
    captions = write_tiny_caption_set(root / "data", count=16, long_words=60)
    return root, captions


def _train(setup, name: str, processes: int, batch_size: int, *extra: str) -> Path:
    root, captions = setup
    output = root / name
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        if processes > 1
        else [sys.executable]
    )
    command = [
        *launcher, str(SCRIPT), "--base-model", str(root / "base"), "--data", str(captions),
        "--image-root", str(captions.parent), "--output-dir", str(output), "--cpu",
        "--batch-size", str(batch_size), "--max-steps", "2", "--lr", "1e-2", "--warmup-steps", "0",
        "--pca-dim", "2", "--num-workers", "0", "--report-to", "none", *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return output


@pytest.fixture(scope="module")
def single(setup):
    return _train(setup, "single", 1, 8)


def _losses(output: Path) -> list[float]:
    return json.loads((output / "training_summary.json").read_text())["losses"]


def test_two_processes_match_one_process_with_the_double_batch(setup, single):
    double = _train(setup, "double", 2, 4)
    assert _losses(double) == pytest.approx(_losses(single), rel=1e-5)
    base = stretch_text_encoder(CLIPModel.from_pretrained(setup[0] / "base")).state_dict()
    one, two = CLIPModel.from_pretrained(single).state_dict(), CLIPModel.from_pretrained(double).state_dict()
    for key, start in base.items():
        if key.endswith("k_proj.bias"):
            # softmax ignores a bias shared by all keys: its gradient is 0 up to rounding, which
            # Adam's normalisation blows up to full-size steps of noise in either run
            continue
        update = (one[key] - start).norm()
        assert (two[key] - one[key]).norm() <= 1e-3 * update + 1e-7, key
    assert (one["text_model.encoder.layers.0.mlp.fc1.weight"] - base["text_model.encoder.layers.0.mlp.fc1.weight"]).norm() > 1e-2


def test_local_pca_scope_on_two_processes_is_the_released_per_process_pca(setup, single):
    local = _train(setup, "local", 2, 4, "--pca-scope", "local")
    first_local, first_global = _losses(local)[0], _losses(single)[0]
    # same weights before the first step: only the short-caption PCA differs
    assert first_local != pytest.approx(first_global, rel=1e-6)
