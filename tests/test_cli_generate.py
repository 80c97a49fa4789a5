"""``longclip-diffusers generate`` on a tiny pipeline saved to disk and a tiny Long-CLIP folder."""

from __future__ import annotations

import huggingface_hub
import pytest
from PIL import Image
from pipeline_helpers import write_tiny_model_dirs

from longclip_diffusers import tiny
from longclip_diffusers.cli.main import build_parser, main

PROMPT = " ".join(["a red cat sits under a tree near the river"] * 12)  # 120 tokens


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    return write_tiny_model_dirs(tmp_path_factory.mktemp("models"))


def _generate(model_dirs, out, *extra, pipeline="sd"):
    pipeline, long_clip = model_dirs / pipeline, model_dirs / "long-clip"
    return main(
        [
            "generate",
            "--prompt",
            PROMPT,
            "--pipeline",
            str(pipeline),
            "--long-clip",
            str(long_clip),
            "--steps",
            "2",
            "--height",
            "32",
            "--width",
            "32",
            "--seed",
            "3",
            "--device",
            "cpu",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.mark.parametrize("pipeline", ["sd", "sdxl"])
def test_generate_writes_the_image_and_prints_the_token_report(model_dirs, tmp_path, capsys, pipeline):
    assert _generate(model_dirs, tmp_path / "cat.png", pipeline=pipeline) == 0
    assert Image.open(tmp_path / "cat.png").size == (32, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png"]
    printed = capsys.readouterr().out
    assert "120 tokens" in printed and "a 77-token encoder drops" in printed


def test_tiny_random_runs_the_command_end_to_end_without_any_model_source(tmp_path, capsys):
    prompt = " ".join(tiny.TINY_WORDS[i % len(tiny.TINY_WORDS)] for i in range(120))
    argv = ["generate", "--tiny-random", "--prompt", prompt, "--steps", "2", "--out", str(tmp_path / "t.png")]
    assert main([*argv, "--compare"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t-compare.png", "t-stock.png", "t.png"]
    assert Image.open(tmp_path / "t.png").size == (64, 64)
    printed = capsys.readouterr().out
    assert "tiny random models" in printed and "120 tokens" in printed


def test_compare_writes_the_stock_image_and_a_side_by_side_sheet(model_dirs, tmp_path):
    assert _generate(model_dirs, tmp_path / "cat.png", "--compare", "--recipe", "longclip") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat-compare.png", "cat-stock.png", "cat.png"]
    sheet = Image.open(tmp_path / "cat-compare.png")
    assert sheet.width == 2 * 32 + 8 and sheet.height > 32
    long, stock = Image.open(tmp_path / "cat.png"), Image.open(tmp_path / "cat-stock.png")
    assert list(long.getdata()) != list(stock.getdata())


def test_a_missing_pipeline_fails_with_one_line_and_writes_nothing(model_dirs, tmp_path, capsys):
    code = main(
        [
            "generate",
            "--prompt",
            "a cat",
            "--pipeline",
            str(tmp_path / "nope"),
            "--long-clip",
            str(model_dirs / "long-clip"),
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "x.png"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and "does not exist. Fix: pass a diffusers pipeline folder" in err
    assert not any(tmp_path.iterdir())


def test_defaults_are_sdxl_base_and_long_clip_l():
    args = build_parser().parse_args(["generate", "--prompt", "p", "--out", "x.png"])
    assert args.pipeline == "stabilityai/stable-diffusion-xl-base-1.0"
    assert args.long_clip == "BeichenZhang/LongCLIP-L"
    assert args.recipe == "standard" and not args.compare


def test_an_offline_pipeline_hub_id_fails_with_the_download_to_make(model_dirs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "x.png"
    code = main(
        [
            "generate",
            "--prompt",
            "a cat",
            "--pipeline",
            "someone/sdxl-finetune",
            "--long-clip",
            str(model_dirs / "long-clip"),
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and "hf download someone/sdxl-finetune" in err
    assert not out.exists()
