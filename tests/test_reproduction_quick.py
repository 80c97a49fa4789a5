"""The toy reproduction's one command, in its quick mode, end to end (CI smoke test): pretrain,
three fine-tuning arms through the real trainer, evaluation, and the three result files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from longclip_diffusers.length.stretching import stretched_length
from longclip_diffusers.reproduction.claims import PREDICTIONS
from longclip_diffusers.reproduction.evaluate import METRICS
from longclip_diffusers.reproduction.experiment import ARMS, QUICK_CONFIG
from longclip_diffusers.reproduction.pretrain import pretrain_base

# Seconds each, not milliseconds: left out of the quick loop (-m "not slow and not browser").
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
POSITIONS = "text_model.embeddings.position_embedding.weight"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduction")
    command = [
        # one thread: on a machine other jobs load, two threads per process thrash
        sys.executable,
        str(REPO / "benchmarks" / "reproduce.py"),
        "--quick",
        "--threads",
        "1",
        "--out-dir",
        str(root / "results"),
        "--work-dir",
        str(root / "work"),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_json_has_every_arm_with_every_metric_as_a_fraction(quick_run):
    results = json.loads((quick_run / "results" / "reproduction.json").read_text())
    assert list(results) == list(ARMS)
    for arm in ARMS:
        assert list(results[arm]) == list(METRICS)
        assert all(0.0 <= value <= 1.0 for value in results[arm].values())


def test_markdown_table_lists_every_arm_and_checks_the_claims(quick_run):
    text = (quick_run / "results" / "reproduction.md").read_text()
    assert "python benchmarks/reproduce.py --quick --threads 1" in text
    assert "Quick mode" in text
    for arm in ARMS:
        assert f"| `{arm}` |" in text
    claim_lines = [line for line in text.splitlines() if line.startswith("- full method")]
    assert [line.split(" (`")[0][2:] for line in claim_lines] == [p[0] for p in PREDICTIONS]
    assert all("reproduced" in line for line in claim_lines)


def test_figure_is_a_png(quick_run):
    with Image.open(quick_run / "results" / "reproduction.png") as image:
        assert image.format == "PNG"
        assert min(image.size) > 100


def test_arms_were_stretched_as_their_names_say(quick_run):
    work = quick_run / "work"
    base = load_file(work / "base" / "model.safetensors")[POSITIONS]
    stretched = {arm: load_file(work / arm / "model.safetensors")[POSITIONS] for arm in ARMS[1:]}
    length = QUICK_CONFIG.pretrain.context_length
    keep, ratio = QUICK_CONFIG.finetune.keep, QUICK_CONFIG.finetune.ratio
    assert base.shape[0] == length
    for arm, table in stretched.items():
        assert table.shape[0] == stretched_length(length, keep, ratio), arm
    # knowledge-preserved stretching keeps and freezes the first rows; plain interpolation does not
    for arm in ("kps_only", "kps_pcm"):
        assert torch.equal(stretched[arm][:keep], base[:keep])
    assert not torch.equal(stretched["direct_ft"][:keep], base[:keep])


def test_only_the_full_method_trains_on_short_captions(quick_run):
    summaries = {arm: json.loads((quick_run / "work" / arm / "training_summary.json").read_text()) for arm in ARMS[1:]}
    assert all(summary["steps"] == QUICK_CONFIG.finetune.schedule.steps for summary in summaries.values())
    # with the same data order and seed, the long-only arms differ from the full method's loss
    assert summaries["kps_pcm"]["losses"][0] > summaries["kps_only"]["losses"][0]


def test_pretraining_is_repeatable(tmp_path):
    config = replace(QUICK_CONFIG.pretrain, schedule=replace(QUICK_CONFIG.pretrain.schedule, steps=3))
    first = load_file(pretrain_base(tmp_path / "first", config) / "model.safetensors")
    second = load_file(pretrain_base(tmp_path / "second", config) / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
