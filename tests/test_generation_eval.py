"""``eval generation``: prompt files, the judge's scores on hand-made images, the run's files
and its resumption, the pipelines it builds, and the command end to end with --tiny-random."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from eval_fixtures import RGB, colour_eval_model
from PIL import Image

from longclip_diffusers import DataFormatError
from longclip_diffusers.cli.main import main
from longclip_diffusers.evaluation.generation import (
    Candidate,
    GenerationSettings,
    build_candidates,
    evaluate_generation,
)
from longclip_diffusers.evaluation.judge import score_images
from longclip_diffusers.evaluation.prompt_files import Prompt, read_prompts
from longclip_diffusers.io.contact_sheet import side_by_side, stacked
from longclip_diffusers.tiny import TINY_WORDS, tiny_long_clip_encoder, tiny_sd_pipeline

DPG_COLUMNS = (
    "item_id,text,keywords,proposition_id,dependency,category_broad,category_detailed,tuple,question_natural_language"
)


def _image(colour: str, size: int = 16) -> Image.Image:
    return Image.new("RGB", (size, size), RGB[colour])


# --- prompt files -----------------------------------------------------------------------------


def test_a_txt_file_gives_one_prompt_per_non_blank_line_named_by_its_line(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("A red car.\n\n  A blue sky.  \n")
    assert read_prompts(path) == [Prompt("0001", "A red car."), Prompt("0003", "A blue sky.")]
    assert read_prompts(path, limit=1) == [Prompt("0001", "A red car.")]


def test_a_jsonl_file_reads_the_prompt_field_and_an_optional_id(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "A red car.", "id": "car/1"}\n\n{"prompt": "A blue sky."}\n')
    assert read_prompts(path) == [Prompt("car_1", "A red car."), Prompt("0003", "A blue sky.")]
    path.write_text('{"prompt": "A red car."}\n{"caption": "no prompt"}\n')
    with pytest.raises(DataFormatError, match='line 2 has no "prompt"'):
        read_prompts(path)


def test_dpg_bench_csv_gives_each_item_once_in_file_order(tmp_path):
    path = tmp_path / "dpg_bench.csv"
    rows = [
        'partiprompts7,"A red car, parked. A blue sky.",car,1,0,entity,whole,entity - whole (car),Is there a car?',
        'partiprompts7,"A red car, parked. A blue sky.",red,2,1,attribute,color,attribute - color (car),Is the car red?',
        "coco3,A green tree.,tree,1,0,entity,whole,entity - whole (tree),Is there a tree?",
    ]
    path.write_text(DPG_COLUMNS + "\n" + "\n".join(rows) + "\n")
    assert read_prompts(path) == [
        Prompt("partiprompts7", "A red car, parked. A blue sky."),
        Prompt("coco3", "A green tree."),
    ]


def test_prompt_files_of_the_wrong_kind_fail_with_the_fix(tmp_path):
    (tmp_path / "p.csv").write_text("caption\nA red car.\n")
    with pytest.raises(DataFormatError, match="needs 'text' and 'item_id'"):
        read_prompts(tmp_path / "p.csv")
    (tmp_path / "p.json").write_text("[]")
    with pytest.raises(DataFormatError, match=".txt, .jsonl, .csv"):
        read_prompts(tmp_path / "p.json")
    (tmp_path / "dup.jsonl").write_text('{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n')
    with pytest.raises(DataFormatError, match="both have the id 'x'"):
        read_prompts(tmp_path / "dup.jsonl")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataFormatError, match="holds no prompt"):
        read_prompts(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="no prompt file"):
        read_prompts(tmp_path / "missing.txt")


# --- the judge on hand-made images ------------------------------------------------------------

# ColourClip (eval_fixtures): an image is its dominant colour, a text its first colour word.
PROMPTS = ["A red car. A blue sky.", "A green tree. A red door."]


def test_scores_of_hand_made_images_are_exact():
    images = [
        [[_image("red")], [_image("red")]],  # "always red": right for prompt 0, wrong for prompt 1
        [[_image("blue")], [_image("green")]],  # draws each prompt's second / first colour
    ]
    scores = score_images(colour_eval_model(), PROMPTS, images, progress=False)
    assert scores.sentences == [["A red car.", "A blue sky."], ["A green tree.", "A red door."]]
    assert scores.partner == [1, 0]
    np.testing.assert_array_equal(scores.whole_prompt_cosine[:, :, 0], [[1, 0], [0, 1]])
    # each image matches one of its prompt's two sentences
    np.testing.assert_array_equal(scores.sentence_cosine[:, :, 0], [[0.5, 0.5], [0.5, 0.5]])
    # "always red" is compared with its own red image of the other prompt: all ties. The second
    # pipeline's blue (prompt 0) beats green on "A blue sky." and ties on "A red car.", etc.
    np.testing.assert_array_equal(scores.sentence_share[:, :, 0], [[0.5, 0.5], [0.75, 0.75]])
    assert scores.truncated == [False, False]


def test_a_single_prompt_has_no_share_and_long_prompts_are_flagged():
    long_prompt = "A red car. " + " ".join(TINY_WORDS[:90])
    scores = score_images(colour_eval_model(), [long_prompt], [[[_image("red"), _image("blue")]]], progress=False)
    assert scores.sentence_share is None and scores.partner is None
    assert scores.truncated == [True]  # ColourClip reads 77 tokens
    np.testing.assert_array_equal(scores.whole_prompt_cosine[0, 0], [1, 0])


# --- the run: files, resumption ---------------------------------------------------------------


class Painter:
    """A candidate that paints its prompt's n-th colour word (or red), recording its calls."""

    def __init__(self, name: str, nth: int):
        self.name, self.nth, self.calls = name, nth, []

    def __call__(self, prompt: str, seed: int) -> Image.Image:
        self.calls.append((prompt, seed))
        colours = [word.strip(".") for word in prompt.split() if word.strip(".") in RGB]
        return _image(colours[self.nth] if len(colours) > self.nth else "red", size=12 + seed)


def _candidates(identity: dict | None = None):
    painters = [Painter("stock", 0), Painter("long", 1)]
    return painters, [Candidate(p.name, p, dict(identity or {})) for p in painters]


def test_a_run_writes_json_markdown_and_a_sheet_per_prompt(tmp_path):
    painters, candidates = _candidates()
    prompts = [Prompt("p0", PROMPTS[0]), Prompt("p1", PROMPTS[1])]
    result = evaluate_generation(
        candidates, prompts, [0, 3], colour_eval_model(), tmp_path, resamples=200, progress=False
    )
    # same seeds for every pipeline and prompt
    for painter in painters:
        assert sorted(painter.calls) == sorted((p, s) for p in PROMPTS for s in (0, 3))

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["pipelines"] == ["stock", "long"] and saved["baseline"] == "stock"
    assert saved["summary"]["stock"]["whole_prompt_cosine"]["mean"] == 1.0
    assert saved["summary"]["long"]["whole_prompt_cosine"]["delta"]["mean"] == -1.0
    # long: blue vs the other prompt's red on p0 (0 + 1) / 2, red vs blue on p1 (0.5 + 1) / 2
    assert saved["summary"]["long"]["sentence_share"]["mean"] == 0.625
    assert saved["summary"]["stock"]["seconds_per_image"]["timed_images"] == 4
    assert len(saved["images"]) == 2 * 2 * 2
    first = saved["images"][0]
    assert first["path"] == "images/p0/stock/seed0.png" and first["reused"] is False
    assert Image.open(tmp_path / first["path"]).size == (12, 12)
    assert [p["compared_with"] for p in saved["prompts"]] == ["p1", "p0"]

    table = (tmp_path / "results.md").read_text().splitlines()
    header = next(line for line in table if line.startswith("| pipeline"))
    assert "whole-prompt cosine" in header and "s / image (median)" in header
    long_row = next(line for line in table if line.startswith("| long "))
    assert "0.000 [0.000, 0.000] | -1.000 [-1.000, -1.000]" in long_row

    sheet = Image.open(tmp_path / "sheets" / "p0.png")
    expected = stacked(
        [side_by_side([_image("red", 12)] * 2, ["a", "b"]), side_by_side([_image("red", 15)] * 2, ["a", "b"])]
    )
    assert sheet.size == expected.size  # one row per seed, the pipelines side by side


def test_a_second_run_reuses_the_images_and_their_times(tmp_path):
    prompts = [Prompt("p0", PROMPTS[0]), Prompt("p1", PROMPTS[1])]
    _, candidates = _candidates()
    first = evaluate_generation(candidates, prompts, [0], colour_eval_model(), tmp_path, resamples=50, progress=False)
    painters, candidates = _candidates()
    second = evaluate_generation(candidates, prompts, [0], colour_eval_model(), tmp_path, resamples=50, progress=False)
    assert all(not painter.calls for painter in painters)
    assert all(image["reused"] for image in second["images"])
    assert [i["seconds"] for i in second["images"]] == pytest.approx([i["seconds"] for i in first["images"]], abs=1e-6)
    assert second["summary"] == first["summary"]


def test_images_made_with_other_settings_or_another_prompt_are_made_again(tmp_path):
    prompts = [Prompt("p0", PROMPTS[0]), Prompt("p1", PROMPTS[1])]
    _, candidates = _candidates({"steps": 30})
    evaluate_generation(candidates, prompts, [0], colour_eval_model(), tmp_path, resamples=50, progress=False)
    painters, candidates = _candidates({"steps": 20})
    evaluate_generation(candidates, prompts, [0], colour_eval_model(), tmp_path, resamples=50, progress=False)
    assert all(len(painter.calls) == 2 for painter in painters)
    painters, candidates = _candidates({"steps": 20})
    changed = [prompts[0], Prompt("p1", "A blue boat. A green field.")]
    evaluate_generation(candidates, changed, [0], colour_eval_model(), tmp_path, resamples=50, progress=False)
    assert all(painter.calls == [("A blue boat. A green field.", 0)] for painter in painters)


def test_stacked_puts_images_one_above_another():
    sheet = stacked([_image("red", 10), _image("blue", 20)])
    assert sheet.size == (20, 10 + 8 + 20)
    assert sheet.getpixel((5, 5)) == RGB["red"] and sheet.getpixel((5, 30)) == RGB["blue"]


# --- the pipelines ----------------------------------------------------------------------------


@pytest.mark.slow
def test_pipelines_share_seeds_and_long_clip_reads_past_77_tokens():
    stock = tiny_sd_pipeline()
    settings = GenerationSettings(steps=1, height=32, width=32)
    candidates = build_candidates(
        stock,
        ["stock", "compel", "longclip-standard"],
        settings,
        long_clip=tiny_long_clip_encoder(tokenizer=stock.tokenizer),
    )
    make = {candidate.name: candidate.make for candidate in candidates}
    head, tail = " ".join(TINY_WORDS[:80]), TINY_WORDS[80:160]
    prompt, changed_tail = f"{head} {' '.join(tail)}", f"{head} {' '.join(reversed(tail))}"

    direct = stock(
        prompt=prompt,
        negative_prompt="",
        num_inference_steps=1,
        height=32,
        width=32,
        generator=torch.Generator("cpu").manual_seed(5),
    ).images[0]
    assert np.array_equal(np.asarray(make["stock"](prompt, 5)), np.asarray(direct))
    assert not np.array_equal(np.asarray(make["stock"](prompt, 5)), np.asarray(make["stock"](prompt, 6)))
    # words past 77 tokens: lost by stock, read by compel and Long-CLIP
    assert np.array_equal(np.asarray(make["stock"](prompt, 5)), np.asarray(make["stock"](changed_tail, 5)))
    for name in ("compel", "longclip-standard"):
        assert not np.array_equal(np.asarray(make[name](prompt, 5)), np.asarray(make[name](changed_tail, 5)))


def test_unknown_pipelines_and_missing_encoders_are_refused():
    settings = GenerationSettings()
    with pytest.raises(ValueError, match="unknown pipeline"):
        build_candidates(object(), ["dalle"], settings)
    with pytest.raises(ValueError, match="--tulip SRC"):
        build_candidates(object(), ["tulip"], settings)


# --- the command ------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_random_runs_the_whole_command_and_a_rerun_reuses_its_images(tmp_path, capsys):
    prompts = tmp_path / "dpg_bench.csv"
    prompts.write_text(
        DPG_COLUMNS
        + "\n"
        + 'a1,"A red cat sits on a chair. A blue bird flies over the house.",cat,1,0,e,w,t,q\n'
        + "a2,A small boat on the river. Two trees near a tall tower.,boat,1,0,e,w,t,q\n"
    )
    out = tmp_path / "run"
    args = ["eval", "generation", "--prompts", str(prompts), "--out", str(out), "--tiny-random", "--steps", "1"]
    args += ["--height", "32", "--width", "32", "--seeds", "0", "1", "--bootstrap", "100"]
    args += ["--pipelines", "stock", "compel", "longclip-standard", "longclip-longclip", "tulip"]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "| pipeline | whole-prompt cosine" in stdout and f"wrote {out}/results.json" in stdout

    result = json.loads((out / "results.json").read_text())
    names = ["stock", "compel", "longclip-standard", "longclip-longclip", "tulip"]
    assert result["pipelines"] == names and result["seeds"] == [0, 1] and result["num_prompts"] == 2
    assert result["settings"]["steps"] == 1 and result["sources"]["judge"] == "tiny-random"
    for name in names:
        entry = result["summary"][name]
        assert set(entry) == {"whole_prompt_cosine", "sentence_cosine", "sentence_share", "seconds_per_image"}
        low, high = entry["whole_prompt_cosine"]["ci"]
        assert low <= entry["whole_prompt_cosine"]["mean"] <= high
        assert entry["seconds_per_image"]["timed_images"] == 4 and entry["seconds_per_image"]["median"] > 0
    assert ("delta" in result["summary"]["tulip"]["sentence_share"]) and "delta" not in result["summary"]["stock"][
        "sentence_cosine"
    ]
    assert len(result["images"]) == 5 * 2 * 2
    for image in result["images"]:
        assert Image.open(out / image["path"]).size == (32, 32)
    assert [p["id"] for p in result["prompts"]] == ["a1", "a2"]
    assert result["prompts"][0]["sentences"] == ["A red cat sits on a chair.", "A blue bird flies over the house."]
    for prompt_id in ("a1", "a2"):
        assert Image.open(out / "sheets" / f"{prompt_id}.png").format == "PNG"
    rows = [line for line in (out / "results.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 5 and all(row.count("|") == rows[0].count("|") for row in rows)

    assert main(args) == 0
    again = json.loads((out / "results.json").read_text())
    assert all(image["reused"] for image in again["images"])
    assert again["summary"] == result["summary"]


def test_the_command_refuses_tulip_without_a_source_before_loading_anything(tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("A red car.\n")
    code = main(
        ["eval", "generation", "--prompts", str(prompts), "--out", str(tmp_path / "o"), "--pipelines", "tulip"]
    )
    assert code == 1
    assert "--tulip SRC" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_eval_generation_help_imports_no_torch():
    code = (
        "import sys\n"
        "from longclip_diffusers.cli.main import main\n"
        "try:\n    main(['eval', 'generation', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=os.environ)
    assert result.returncode == 0, result.stderr
    for option in ("--prompts", "--pipelines", "--judge", "--seeds", "--tiny-random", "dpg_bench.csv"):
        assert option in result.stdout
