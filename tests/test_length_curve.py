"""The effective-length curve: R@1 follows what the truncated captions still say, and the
``eval length-curve`` command writes a PNG and JSON for several models."""

from __future__ import annotations

import importlib
import importlib.util
import json

import pytest
from eval_fixtures import colour_eval_model, save_tiny_clip, write_urban1k
from PIL import Image

from longclip_diffusers import evaluation, length_curve, load_retrieval_dataset
from longclip_diffusers.cli.main import main

# the package's ``length_curve`` is the function; the plot is patched in the module
length_curve_module = importlib.import_module("longclip_diffusers.evaluation.length_curve")

FILLER = "a photo of the scene with a tree and a house near the road"  # 14 one-token words


def _late_colour_captions(root):
    # The colour word is token 30 (start token + 28 filler words + colour): captions cut to
    # fewer than 31 tokens no longer say which image they describe.
    filler = " ".join((FILLER.split() * 2)[:28])
    return write_urban1k(root, [(c, f"{filler} {c} {FILLER}") for c in ("red", "green", "blue")])


def test_recall_appears_once_captions_reach_the_deciding_token(tmp_path):
    data = load_retrieval_dataset("urban1k", _late_colour_captions(tmp_path))
    curve = length_curve([colour_eval_model()], data, lengths=(10, 20, 30, 32, 77, 100), progress=False)
    (model,) = curve["models"]
    assert curve["lengths"] == [10, 20, 30, 32, 77, 100]
    assert model["max_length"] == 77
    assert model["image_to_text"] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert model["text_to_image"] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def test_length_curve_command_writes_png_and_json_for_each_model(tmp_path, capsys):
    short = save_tiny_clip(tmp_path / "clip77", positions=77)
    long = save_tiny_clip(tmp_path / "longclip248", positions=248)
    root = _late_colour_captions(tmp_path / "urban")
    out = tmp_path / "curve"
    code = main(
        [
            "eval",
            "length-curve",
            "--model",
            str(short),
            "--model",
            str(long),
            "--dataset",
            "urban1k",
            "--root",
            str(root),
            "--out",
            str(out),
            "--lengths",
            "10",
            "77",
            "248",
        ]
    )
    assert code == 0
    curve = json.loads((out / "length_curve.json").read_text())
    assert [m["max_length"] for m in curve["models"]] == [77, 248]
    assert all(len(m["image_to_text"]) == 3 for m in curve["models"])
    # A 77-position model reads no further than 77: its 248 point repeats its 77 point.
    assert curve["models"][0]["text_to_image"][1] == curve["models"][0]["text_to_image"][2]
    with Image.open(out / "length_curve.png") as png:
        assert png.format == "PNG" and png.size[0] > 300
    assert "R@1 (%) by caption length" in capsys.readouterr().out


def test_without_matplotlib_the_command_stops_before_loading_any_model(tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "matplotlib" else find_spec(name, *rest)
    )

    def load_eval_model(*args, **kwargs):
        raise AssertionError("a model was loaded although the plot cannot be drawn")

    monkeypatch.setattr(evaluation, "load_eval_model", load_eval_model)
    root = _late_colour_captions(tmp_path / "urban")
    out = tmp_path / "curve"
    code = main(
        [
            "eval",
            "length-curve",
            "--model",
            str(tmp_path / "any-model"),
            "--dataset",
            "urban1k",
            "--root",
            str(root),
            "--out",
            str(out),
        ]
    )
    assert code == 1
    assert "pip install 'longclip-diffusers[eval]'" in capsys.readouterr().err
    assert not out.exists()


def test_a_plot_that_fails_leaves_no_json_behind(tmp_path, monkeypatch):
    data = load_retrieval_dataset("urban1k", _late_colour_captions(tmp_path / "urban"))
    curve = length_curve([colour_eval_model()], data, lengths=(10, 77), progress=False)

    def plot_length_curve(curve, path):
        raise OSError("disk full")

    monkeypatch.setattr(length_curve_module, "plot_length_curve", plot_length_curve)
    with pytest.raises(OSError, match="disk full"):
        length_curve_module.write_length_curve(curve, tmp_path / "curve")
    assert not (tmp_path / "curve" / "length_curve.json").exists()
