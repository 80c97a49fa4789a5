"""TULIP training: stage 1 distillation on a synthetic caption corpus reaches the teacher on
held-out short captions, resumes exactly; stage 2 runs on images and exports a full model."""

from __future__ import annotations

import json
import random

import pytest
import torch
from PIL import Image

from longclip_diffusers import TulipModel, TulipTextModelWithProjection, load_clip_model, load_text_encoder
from longclip_diffusers.compat import text_transformer
from longclip_diffusers.io.export import save_clip_model, save_text_encoder
from longclip_diffusers.io.loading import CACHE_ENV
from longclip_diffusers.tiny import (
    TINY_WORDS,
    tiny_clip_model,
    tiny_clip_tokenizer,
    tiny_openai_state_dict,
    tiny_text_encoder,
)
from longclip_diffusers.training import tulip_distillation as distillation
from longclip_diffusers.training.data import CaptionTokens
from longclip_diffusers.training.tulip_distillation import (
    build_parser,
    distillation_loss,
    main,
    mean_cosine,
    student_from_teacher,
    tulip_from_clip,
)

COMMON = ["--num-workers", "0", "--report-to", "none", "--cpu", "--seed", "0"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy CPU the threads' spinning
    costs many times the work (hundreds of steps run here)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _captions(count: int, longest: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(TINY_WORDS) for _ in range(rng.randint(3, longest))) for _ in range(count)]


def _write_corpus(path, captions: list[str]) -> None:
    # the records format needs an image path; stage 1 never opens it
    path.write_text("\n".join(json.dumps({"image": "unused.png", "caption": c}) for c in captions))


def _smooth_teacher(tokenizer):
    """A tiny CLIP text tower whose position table varies smoothly with position, as trained
    tables do (a table of independent random rows is a lookup no relative encoding can mimic)."""
    teacher = tiny_text_encoder(True, seed=0, tokenizer=tokenizer, hidden_size=32, num_layers=2, num_heads=2)
    table = teacher.text_model.embeddings.position_embedding.weight
    angles = torch.arange(table.shape[0], dtype=torch.float32)[:, None] * 0.5 ** torch.arange(8.0)
    basis = torch.cat([angles.sin(), angles.cos()], dim=1)
    mixing = torch.randn(16, table.shape[1], generator=torch.Generator().manual_seed(1)) / 4
    with torch.no_grad():
        table.copy_(basis @ mixing)
    return teacher


def test_distillation_loss_is_one_minus_cosine():
    teacher = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    student = torch.tensor([[1.0, 1.0], [0.0, 5.0]])
    expected = ((1 - 2**-0.5) + 0.0) / 2
    assert distillation_loss(teacher, student).item() == pytest.approx(expected)


def test_student_starts_from_every_teacher_weight_but_positions():
    teacher = tiny_text_encoder(True, seed=2, tokenizer=tiny_clip_tokenizer())
    student = student_from_teacher(teacher)
    assert isinstance(student, TulipTextModelWithProjection) and student.config.hidden_act == "gelu"
    assert student.config.trained_length == student.config.max_position_embeddings == 248
    assert torch.equal(student.text_projection.weight, teacher.text_projection.weight)
    assert torch.equal(
        student.text_model.encoder.layers[1].self_attn.k_proj.weight,
        teacher.text_model.encoder.layers[1].self_attn.k_proj.weight,
    )


def test_distillation_reaches_the_teacher_on_held_out_short_captions(tmp_path):
    tokenizer = tiny_clip_tokenizer()
    teacher = _smooth_teacher(tokenizer)
    save_text_encoder(teacher, tmp_path / "teacher", tokenizer=tokenizer)
    _write_corpus(tmp_path / "captions.jsonl", _captions(1200, 12, seed=0))
    held_out = CaptionTokens(tokenizer, 77)(_captions(200, 12, seed=1))
    start = mean_cosine(teacher, student_from_teacher(teacher).eval(), held_out)

    assert (
        main(
            [
                "distill",
                "--teacher",
                str(tmp_path / "teacher"),
                "--data",
                str(tmp_path / "captions.jsonl"),
                "--output-dir",
                str(tmp_path / "student"),
                "--batch-size",
                "32",
                "--max-steps",
                "400",
                "--lr",
                "1e-2",
                "--warmup-steps",
                "20",
                "--validation-size",
                "100",
                *COMMON,
            ]
        )
        == 0
    )

    student = load_text_encoder(tmp_path / "student", with_projection=True)
    end = mean_cosine(teacher, student, held_out)
    print(f"held-out teacher-student cosine: {start:.4f} before distillation, {end:.4f} after")
    assert start < 0.9, f"the untrained student is already close ({start:.4f}): the test proves nothing"
    assert end > 0.99, f"held-out cosine went from {start:.4f} to only {end:.4f}"
    assert torch.equal(student.get_input_embeddings().weight, teacher.get_input_embeddings().weight)
    assert student.config.max_position_embeddings == 248
    summary = json.loads((tmp_path / "student" / "training_summary.json").read_text())
    assert summary["steps"] == 400 and summary["validation"]["val/cosine"] > 0.99


def test_an_openai_checkpoint_teacher_is_distilled_as_clip_at_77_positions(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    # a file carries no tokenizer: it converts with CLIP's special ids, so CLIP's vocabulary size
    state = tiny_openai_state_dict(context=77, two_position_tables=False, with_vision=False, vocab_size=49408)
    torch.save(state, tmp_path / "clip.pt")
    tiny_clip_tokenizer().save_pretrained(tmp_path / "tokenizer")
    _write_corpus(tmp_path / "captions.jsonl", _captions(8, 12, seed=0))
    teachers = []

    def spy(teacher, **options):
        teachers.append(teacher)
        return student_from_teacher(teacher, **options)

    monkeypatch.setattr(distillation, "student_from_teacher", spy)
    assert (
        main(
            [
                "distill",
                "--teacher",
                str(tmp_path / "clip.pt"),
                "--tokenizer",
                str(tmp_path / "tokenizer"),
                "--data",
                str(tmp_path / "captions.jsonl"),
                "--output-dir",
                str(tmp_path / "student"),
                "--batch-size",
                "4",
                "--max-steps",
                "1",
                *COMMON,
            ]
        )
        == 0
    )
    (teacher,) = teachers
    assert teacher.config.max_position_embeddings == 77
    table = text_transformer(teacher).embeddings.position_embedding.weight
    torch.testing.assert_close(table, state["positional_embedding"])


def test_distillation_resumes_to_the_same_weights(tmp_path):
    tokenizer = tiny_clip_tokenizer()
    save_text_encoder(_smooth_teacher(tokenizer), tmp_path / "teacher", tokenizer=tokenizer)
    _write_corpus(tmp_path / "captions.jsonl", _captions(200, 12, seed=0))
    run = [
        "distill",
        "--teacher",
        str(tmp_path / "teacher"),
        "--data",
        str(tmp_path / "captions.jsonl"),
        "--batch-size",
        "16",
        "--max-steps",
        "16",
        "--lr",
        "1e-2",
        "--warmup-steps",
        "2",
        *COMMON,
    ]
    assert main([*run, "--output-dir", str(tmp_path / "whole"), "--save-every", "6"]) == 0
    # 200 captions give 12 batches of 16: the resumed run also crosses an epoch boundary
    assert (
        main(
            [
                *run,
                "--output-dir",
                str(tmp_path / "resumed"),
                "--resume-from",
                str(tmp_path / "whole" / "checkpoints" / "step-6"),
            ]
        )
        == 0
    )
    whole = load_text_encoder(tmp_path / "whole", with_projection=True).state_dict()
    resumed = load_text_encoder(tmp_path / "resumed", with_projection=True).state_dict()
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, atol=1e-6, rtol=1e-5)


def test_expansion_trains_the_student_beside_clip_vision_and_exports_a_full_model(tmp_path):
    tokenizer = tiny_clip_tokenizer()
    clip = tiny_clip_model(seed=0, tokenizer=tokenizer)
    save_clip_model(clip, tmp_path / "clip", tokenizer=tokenizer)
    teacher = load_text_encoder(tmp_path / "clip", with_projection=True)
    save_text_encoder(student_from_teacher(teacher), tmp_path / "student", tokenizer=tokenizer)
    images = tmp_path / "images"
    images.mkdir()
    rng = torch.Generator().manual_seed(0)
    records = []
    for i, caption in enumerate(_captions(8, 60, seed=3)):
        pixels = (torch.rand(32, 32, 3, generator=rng) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(images / f"{i}.png")
        records.append({"image": f"{i}.png", "caption": caption + ". " + caption})
    (tmp_path / "pairs.json").write_text(json.dumps(records))

    assert (
        main(
            [
                "expand",
                "--student",
                str(tmp_path / "student"),
                "--base-model",
                str(tmp_path / "clip"),
                "--data",
                str(tmp_path / "pairs.json"),
                "--image-root",
                str(images),
                "--output-dir",
                str(tmp_path / "tulip"),
                "--batch-size",
                "4",
                "--max-steps",
                "3",
                "--lr",
                "1e-3",
                "--warmup-steps",
                "1",
                *COMMON,
            ]
        )
        == 0
    )

    tulip = load_clip_model(tmp_path / "tulip")
    assert isinstance(tulip, TulipModel)
    assert tulip.config.text_config.max_position_embeddings == 248
    summary = json.loads((tmp_path / "tulip" / "training_summary.json").read_text())
    assert summary["steps"] == 3 and all(torch.isfinite(torch.tensor(summary["losses"])))
    moved = tulip.text_model.encoder.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(moved, teacher.text_model.encoder.layers[0].self_attn.q_proj.weight)
    torch.testing.assert_close(tulip.logit_scale, clip.logit_scale, atol=0.1, rtol=0)


def test_expansion_starts_from_exactly_the_student_and_the_clip_vision_side():
    tokenizer = tiny_clip_tokenizer()
    clip = tiny_clip_model(seed=0, tokenizer=tokenizer)
    student = student_from_teacher(tiny_text_encoder(True, seed=2, tokenizer=tokenizer))
    weights = tulip_from_clip(clip, student).state_dict()
    sources = {**clip.state_dict(), **student.state_dict()}
    assert set(weights) <= set(sources)
    for key, value in weights.items():
        assert torch.equal(value, sources[key]), key


def test_expansion_trains_without_pca_by_default():
    args = build_parser().parse_args(
        ["expand", "--student", "s", "--base-model", "b", "--data", "d.json", "--output-dir", "o"]
    )
    assert args.pca_dim is None and args.short_loss_weight == 1.0


def test_distillation_on_a_missing_caption_file_is_one_error_line_and_leaves_no_output(tmp_path, capsys):
    output = tmp_path / "student"
    code = main(
        [
            "distill",
            "--teacher",
            str(tmp_path / "teacher"),
            "--data",
            str(tmp_path / "nope.jsonl"),
            "--output-dir",
            str(output),
            *COMMON,
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: caption file")
    assert not output.exists()


def test_a_tulip_teacher_is_refused_with_the_fix_and_leaves_no_output(tmp_path, capsys):
    tokenizer = tiny_clip_tokenizer()
    save_text_encoder(student_from_teacher(tiny_text_encoder(True)), tmp_path / "tulip", tokenizer=tokenizer)
    _write_corpus(tmp_path / "captions.jsonl", _captions(8, 10, seed=0))
    capsys.readouterr()
    output = tmp_path / "student"
    code = main(
        [
            "distill",
            "--teacher",
            str(tmp_path / "tulip"),
            "--data",
            str(tmp_path / "captions.jsonl"),
            "--output-dir",
            str(output),
            "--batch-size",
            "2",
            *COMMON,
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "is a TULIP encoder" in err[-1] and "Fix: pass a CLIP" in err[-1]
    assert not output.exists()
