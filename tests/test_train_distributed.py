"""Two processes with batch B train exactly like one process with batch 2B.

``accelerate launch --cpu --num_processes 2`` starts one process on a machine without MPI, so the
two CPU processes are started with ``torchrun`` (docs/distributed-training.md); ``Accelerator`` then
runs DDP over gloo. The learning rate is large so that the updates are far above rounding.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from training_helpers import run_launched, tiny_training_argv
from transformers import CLIPModel

from longclip_diffusers import stretch_text_encoder
from longclip_diffusers.io.export import save_clip_model
from longclip_diffusers.io.image_preprocessing import ClipImageTransform
from longclip_diffusers.io.loading import load_tokenizer
from longclip_diffusers.tiny import tiny_clip_model, tiny_clip_tokenizer, write_tiny_caption_set
from longclip_diffusers.training import (
    CaptionBatchCollator,
    ContrastiveFeatures,
    ImageCaptionDataset,
    ShardedBatchSampler,
    pcm_loss,
    prepare_longclip_model,
    read_records,
)

# Seconds each, not milliseconds: left out of the quick loop (-m "not slow and not browser").
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "train_longclip.py"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    save_clip_model(tiny_clip_model(), root / "base", tokenizer=tiny_clip_tokenizer())
    captions = write_tiny_caption_set(root / "data", count=16, long_words=60)
    return root, captions


def _launch(
    setup, name: str, processes: int, batch_size: int, *extra: str
) -> tuple[Path, subprocess.CompletedProcess]:
    root, captions = setup
    output = root / name
    argv = tiny_training_argv(
        root / "base", captions, output, *extra, image_root=captions.parent, batch_size=batch_size
    )
    return output, run_launched(processes, SCRIPT, *argv)


def _train(setup, name: str, processes: int, batch_size: int, *extra: str) -> Path:
    output, done = _launch(setup, name, processes, batch_size, *extra)
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
    assert (
        one["text_model.encoder.layers.0.mlp.fc1.weight"] - base["text_model.encoder.layers.0.mlp.fc1.weight"]
    ).norm() > 1e-2


@torch.no_grad()
def _first_step_loss(setup, pca_group_sizes: list[int] | None) -> float:
    """The loss of global batch 0 (2 processes x 4 rows) on the stretched base, computed in
    this process from the trainer's own data pieces and :func:`pcm_loss`."""
    root, captions = setup
    model = prepare_longclip_model(CLIPModel.from_pretrained(root / "base"), keep=20, ratio=4.0)
    tokenizer = load_tokenizer(root / "base", model_max_length=248)
    dataset = ImageCaptionDataset(
        read_records(captions), captions.parent, ClipImageTransform(model.config.vision_config.image_size)
    )
    rows = [i for rank in range(2) for i in next(iter(ShardedBatchSampler(16, 4, 2, rank, seed=0, epoch=0)))]
    batch = CaptionBatchCollator(tokenizer, 248)([dataset[i] for i in rows])
    out = ContrastiveFeatures(model, tokenizer.eos_token_id)(
        batch["pixel_values"], batch["input_ids"], batch["short_input_ids"]
    )
    return pcm_loss(
        out.image, out.long_text, out.short_text, out.logit_scale, pca_dim=2, pca_group_sizes=pca_group_sizes
    ).total.item()


def test_local_pca_scope_on_two_processes_is_the_released_per_process_pca(setup, single):
    local = _train(setup, "local", 2, 4, "--pca-scope", "local")
    expected_local, expected_global = _first_step_loss(setup, [4, 4]), _first_step_loss(setup, None)
    # same weights before the first step: only the short-caption PCA differs
    assert expected_local != pytest.approx(expected_global, rel=1e-4)
    assert _losses(local)[0] == pytest.approx(expected_local, rel=1e-5)
    assert _losses(single)[0] == pytest.approx(expected_global, rel=1e-5)


def test_a_user_error_on_two_processes_is_one_error_line_and_no_output(setup):
    output, done = _launch(setup, "too-little-data", 2, 16)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: 16 training pairs make no full global batch of 16 x 2 processes; lower --batch-size or add data"
    ]
    # torchrun reports the failed workers with a traceback of its own; none comes from our code
    frames = [line for line in done.stderr.splitlines() if line.strip().startswith('File "')]
    assert not any("longclip_diffusers" in frame for frame in frames)
    assert not output.exists()
