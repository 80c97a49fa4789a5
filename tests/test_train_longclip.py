"""End-to-end Long-CLIP fine-tuning on a tiny model and a synthetic image-caption set."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from transformers import CLIPModel, CLIPTokenizer

from longclip_diffusers import stretch_text_encoder
from longclip_diffusers.conversion.openai_keys import merged_position_table
from longclip_diffusers.drop_in.swap_encoders import apply_long_clip
from longclip_diffusers.errors import InvalidArgumentError, OutputExistsError
from longclip_diffusers.io.export import save_clip_model
from longclip_diffusers.io.loading import CACHE_ENV, load_text_encoder
from longclip_diffusers.tiny import (
    tiny_clip_model,
    tiny_clip_tokenizer,
    tiny_openai_state_dict,
    tiny_sdxl_pipeline,
    write_tiny_caption_set,
)
from longclip_diffusers.training import prepare_longclip_model
from longclip_diffusers.training.checkpointing import check_output_dir
from longclip_diffusers.training.longclip import main, parse_longclip_args, train_longclip
from longclip_diffusers.training.model_setup import SplitPositionEmbedding
from longclip_diffusers.training.tulip_distillation import student_from_teacher, tulip_from_clip

POSITIONS = "text_model.embeddings.position_embedding.weight"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return write_tiny_caption_set(folder, count=20, long_words=100), folder


def _args(base_dir, data, output_dir, *extra):
    captions, images = data
    return parse_longclip_args(
        [
            "--base-model",
            str(base_dir),
            "--data",
            str(captions),
            "--image-root",
            str(images),
            "--output-dir",
            str(output_dir),
            "--batch-size",
            "4",
            "--lr",
            "1e-3",
            "--warmup-steps",
            "1",
            "--pca-dim",
            "2",
            "--num-workers",
            "0",
            "--log-every",
            "1",
            "--cpu",
            *extra,
        ]
    )


def _argv(base_dir, data, output_dir, *extra) -> list[str]:
    captions, images = data
    return [
        "--base-model",
        str(base_dir),
        "--data",
        str(captions),
        "--image-root",
        str(images),
        "--output-dir",
        str(output_dir),
        "--batch-size",
        "4",
        "--num-workers",
        "0",
        "--cpu",
        *extra,
    ]


def _weights(folder) -> dict[str, torch.Tensor]:
    return CLIPModel.from_pretrained(folder).state_dict()


@pytest.fixture(scope="module")
def trained(base_dir, data, tmp_path_factory):
    output = tmp_path_factory.mktemp("run") / "out"
    train_longclip(_args(base_dir, data, output, "--max-steps", "4", "--save-every", "2", "--validation-size", "4"))
    return output


def test_export_is_a_248_position_clip_model_with_its_tokenizer(trained):
    model = CLIPModel.from_pretrained(trained)
    assert model.config.text_config.max_position_embeddings == 248
    assert (trained / "model.safetensors").is_file()
    assert CLIPTokenizer.from_pretrained(trained).model_max_length == 248


def test_rows_below_keep_equal_the_stretched_base_and_the_others_moved(base_dir, trained):
    stretched = stretch_text_encoder(CLIPModel.from_pretrained(base_dir)).state_dict()[POSITIONS]
    exported = _weights(trained)[POSITIONS]
    assert torch.equal(exported[:20], stretched[:20])
    moved = (exported[20:] - stretched[20:]).abs().amax(dim=1)
    assert (moved[:80] > 1e-4).all()


def test_everything_else_trained_including_the_vision_tower(base_dir, trained):
    before, after = CLIPModel.from_pretrained(base_dir).state_dict(), _weights(trained)
    for key in (
        "text_model.embeddings.token_embedding.weight",
        "vision_model.embeddings.patch_embedding.weight",
        "text_projection.weight",
    ):
        assert not torch.equal(before[key], after[key]), key


def test_run_writes_checkpoints_logs_and_a_summary_with_validation(trained):
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["step-2", "step-4"]
    progress = json.loads((trained / "checkpoints" / "step-2" / "progress.json").read_text())
    assert (progress["step"], progress["epoch"], progress["batch_in_epoch"]) == (2, 0, 2)
    assert progress["num_processes"] == 1
    assert not list((trained / "checkpoints").rglob("custom_checkpoint_*"))
    assert list((trained / "logs").rglob("events.out.tfevents.*"))
    summary = json.loads((trained / "training_summary.json").read_text())
    assert summary["steps"] == 4 and len(summary["losses"]) == 4
    assert progress["losses"] == summary["losses"][:2]
    assert set(summary["validation"]) == {"val/long_i2t_r1", "val/long_t2i_r1", "val/short_i2t_r1", "val/short_t2i_r1"}
    assert summary["skipped_images"] == []


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(base_dir, data, trained, tmp_path):
    resumed = tmp_path / "resumed"
    result = train_longclip(
        _args(
            base_dir,
            data,
            resumed,
            "--max-steps",
            "4",
            "--validation-size",
            "4",
            "--report-to",
            "none",
            "--resume-from",
            str(trained / "checkpoints" / "step-2"),
        )
    )
    uninterrupted, continued = _weights(trained), _weights(resumed)
    for key, tensor in uninterrupted.items():
        assert torch.equal(tensor, continued[key]), key
    losses = json.loads((trained / "training_summary.json").read_text())["losses"]
    summary = json.loads((resumed / "training_summary.json").read_text())
    assert result.steps == 4 and summary["steps"] == 4
    # the steps before the resume come from the checkpoint: the summary holds every step
    assert summary["losses"][:2] == losses[:2] and result.losses == summary["losses"]
    assert summary["losses"][2:] == pytest.approx(losses[2:], rel=1e-6)


def test_a_checkpoint_of_another_number_of_processes_is_refused_before_anything_is_written(
    base_dir, data, trained, tmp_path
):
    checkpoint = tmp_path / "step-2"
    shutil.copytree(trained / "checkpoints" / "step-2", checkpoint)
    progress = json.loads((checkpoint / "progress.json").read_text())
    (checkpoint / "progress.json").write_text(json.dumps({**progress, "num_processes": 2}))
    output = tmp_path / "resumed"
    argv = ["--max-steps", "4", "--validation-size", "4", "--resume-from", str(checkpoint)]
    with pytest.raises(InvalidArgumentError, match=r"run of 2 process\(es\) and this run has 1.*--nproc_per_node 2"):
        train_longclip(_args(base_dir, data, output, *argv))
    assert not output.exists()


def test_tracker_logs_the_long_and_short_parts_of_the_loss(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((trained / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    scalars = {
        tag: [e.value for e in events.Scalars(tag)] for tag in ("train/loss", "train/long_loss", "train/short_loss")
    }
    assert all(len(values) == 4 for values in scalars.values())
    for total, long, short in zip(*scalars.values()):
        assert total == pytest.approx(long + short, rel=1e-5)
        assert long != pytest.approx(short, rel=1e-3)


def test_export_loads_into_a_tiny_sdxl_pipeline_that_runs(trained):
    pipe = apply_long_clip(tiny_sdxl_pipeline(), str(trained))
    prompt = " ".join(["a red cat near a tall tree"] * 20)
    image = pipe(prompt, num_inference_steps=2, height=64, width=64, output_type="np").images
    assert image.shape == (1, 64, 64, 3)
    assert pipe.text_encoder.config.max_position_embeddings == 248


def test_corrupt_image_is_skipped_and_reported_in_a_long_caption_only_run(base_dir, tmp_path, capsys):
    captions = write_tiny_caption_set(tmp_path / "data", count=8)
    (tmp_path / "data" / "image_0003.png").write_bytes(b"\x89PNG broken")
    result = train_longclip(
        _args(
            base_dir,
            (captions, tmp_path / "data"),
            tmp_path / "out",
            "--epochs",
            "1",
            "--short-loss-weight",
            "0",
            "--report-to",
            "none",
        )
    )
    assert result.steps == 2
    assert [path.rsplit("/", 1)[-1] for path, _ in result.skipped] == ["image_0003.png"]
    summary = json.loads((tmp_path / "out" / "training_summary.json").read_text())
    assert summary["skipped_images"][0]["image"].endswith("image_0003.png")
    assert "skipped 1 unreadable image" in capsys.readouterr().out


def test_a_finished_output_dir_is_not_trained_over(base_dir, data, trained):
    with pytest.raises(OutputExistsError, match="--overwrite"):
        train_longclip(_args(base_dir, data, trained, "--max-steps", "1"))


def test_checkpoints_of_another_run_are_not_mixed_with_a_new_run(tmp_path):
    (tmp_path / "checkpoints" / "step-2").mkdir(parents=True)
    with pytest.raises(OutputExistsError, match="checkpoints of another run .*--resume-from latest.*--overwrite"):
        check_output_dir(tmp_path, overwrite=False)
    check_output_dir(tmp_path, overwrite=False, resume_from="latest")
    check_output_dir(tmp_path, overwrite=True)
    check_output_dir(tmp_path / "fresh", overwrite=False)


def test_resume_from_latest_without_checkpoints_says_it_starts_from_step_0(base_dir, data, tmp_path, capsys):
    result = train_longclip(
        _args(
            base_dir,
            data,
            tmp_path / "out",
            "--max-steps",
            "1",
            "--resume-from",
            "latest",
            "--report-to",
            "none",
        )
    )
    assert result.steps == 1
    assert f"no checkpoint under {tmp_path / 'out' / 'checkpoints'}; starting from step 0" in capsys.readouterr().out


def test_missing_caption_file_is_one_error_line_and_leaves_no_output(base_dir, data, tmp_path, capsys):
    output = tmp_path / "out"
    assert main(_argv(base_dir, (tmp_path / "nope.jsonl", data[1]), output)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: caption file") and "--data" in err[0]
    assert not output.exists()


def test_too_little_data_for_one_global_batch_fails_before_writing_anything(base_dir, tmp_path, capsys):
    captions = write_tiny_caption_set(tmp_path / "data", count=3)
    output = tmp_path / "out"
    # the default --report-to tensorboard would write OUTPUT_DIR/logs if the run got that far
    assert main(_argv(base_dir, (captions, tmp_path / "data"), output)) == 1
    assert "make no full global batch" in capsys.readouterr().err
    assert not output.exists()


def test_a_diverging_loss_ends_the_run_with_one_error_line_naming_the_fix(base_dir, data, tmp_path, capsys):
    argv = _argv(base_dir, data, tmp_path / "out", "--lr", "1e30", "--max-steps", "5", "--report-to", "none")
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: the loss became") and "lower --lr" in err[-1]


def test_a_tulip_base_is_refused_with_the_fix_and_leaves_no_output(base_dir, data, tmp_path, capsys):
    teacher = load_text_encoder(base_dir, with_projection=True)
    tulip = tulip_from_clip(CLIPModel.from_pretrained(base_dir), student_from_teacher(teacher))
    save_clip_model(tulip, tmp_path / "tulip", tokenizer=tiny_clip_tokenizer())
    capsys.readouterr()
    output = tmp_path / "out"
    assert main(_argv(tmp_path / "tulip", data, output)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "is a TULIP model" in err[-1] and "training/distill_tulip.py" in err[-1]
    assert not output.exists()


@pytest.mark.parametrize(
    ("context", "options", "rows", "keep"),
    [(77, (), 248, 20), (77, ("--keep", "10", "--ratio", "2"), 144, 10), (248, (), 248, 20)],
    ids=["openai-defaults", "openai-keep-10-ratio-2", "longclip-248"],
)
def test_a_checkpoint_file_base_is_stretched_once_with_this_runs_keep_and_ratio(
    data, tmp_path, monkeypatch, context, options, rows, keep
):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    # a file carries no tokenizer: it converts with CLIP's special ids, so CLIP's vocabulary size
    state = tiny_openai_state_dict(context=context, two_position_tables=context > 77, vocab_size=49408)
    base = tmp_path / "base.pt"
    torch.save(state, base)
    tokenizer = tmp_path / "tokenizer"
    tiny_clip_tokenizer().save_pretrained(tokenizer)
    output = tmp_path / "out"
    train_longclip(
        _args(base, data, output, "--tokenizer", str(tokenizer), "--max-steps", "1", "--report-to", "none", *options)
    )
    exported = _weights(output)[POSITIONS]
    assert exported.shape[0] == rows
    assert CLIPTokenizer.from_pretrained(output).model_max_length == rows
    assert torch.equal(exported[:keep], merged_position_table(state)[:keep])


def test_a_base_longer_than_77_positions_keeps_its_table_and_says_so(caplog):
    base = tiny_clip_model(max_position_embeddings=248)
    table = base.text_model.embeddings.position_embedding.weight.detach().clone()
    with caplog.at_level(logging.WARNING):
        model = prepare_longclip_model(base, keep=20, ratio=4.0)
    assert torch.equal(model.text_model.embeddings.position_embedding.weight, table)
    assert model.config.text_config.max_position_embeddings == 248
    assert "already has 248 text positions" in caplog.text


def test_keep_zero_interpolates_every_row_and_freezes_none():
    model = prepare_longclip_model(tiny_clip_model(), keep=0, ratio=3.0)
    table = model.text_model.embeddings.position_embedding
    assert not isinstance(table, SplitPositionEmbedding)
    assert table.weight.shape[0] == 231 and table.weight.requires_grad


def test_frozen_rows_are_not_parameters_so_weight_decay_cannot_move_them():
    model = prepare_longclip_model(tiny_clip_model(), keep=20, ratio=4.0)
    table = model.text_model.embeddings.position_embedding
    assert isinstance(table, SplitPositionEmbedding)
    assert all(p is not table.frozen for p in model.parameters())
    assert table.weight.shape[0] == 248
    assert model.logit_scale.item() == pytest.approx(4.6052, abs=1e-4)


def test_freeze_vision_leaves_only_the_text_side_trainable():
    model = prepare_longclip_model(tiny_clip_model(), keep=20, ratio=4.0, freeze_vision=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert not any(name.startswith(("vision_model.", "visual_projection.")) for name in trainable)
    assert "text_projection.weight" in trainable and "logit_scale" in trainable


def test_gradient_checkpointing_gives_the_same_gradients():
    from longclip_diffusers.training import ContrastiveFeatures, pcm_loss

    tokenizer = tiny_clip_tokenizer(model_max_length=248)
    ids = tokenizer(
        ["a red cat on a road", "two dogs"] * 3, padding="max_length", max_length=248, return_tensors="pt"
    ).input_ids
    pixels = torch.randn(6, 3, 32, 32)
    grads = []
    for checkpointing in (False, True):
        model = prepare_longclip_model(tiny_clip_model(), keep=20, ratio=4.0, gradient_checkpointing=checkpointing)
        out = ContrastiveFeatures(model, tokenizer.eos_token_id)(pixels, ids, ids[:, :8])
        pcm_loss(out.image, out.long_text, out.short_text, out.logit_scale, pca_dim=2).total.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-5)


def test_paper_defaults_and_bad_arguments_named_in_the_error():
    args = parse_longclip_args(["--base-model", "b", "--data", "d.json", "--output-dir", "o"])
    assert (args.lr, args.weight_decay, args.warmup_steps, args.batch_size) == (1e-6, 0.01, 200, 128)
    assert (args.pca_dim, args.pca_scope, args.label_smoothing, args.short_loss_weight) == (32, "global", 0.1, 1.0)
    assert (args.keep, args.ratio, args.epochs, args.report_to) == (20, 4.0, 1, "tensorboard")
    with pytest.raises(ValueError, match="--batch-size must be positive"):
        parse_longclip_args(["--base-model", "b", "--data", "d.json", "--output-dir", "o", "--batch-size", "0"])
    with pytest.raises(ValueError, match="--label-smoothing"):
        parse_longclip_args(["--base-model", "b", "--data", "d.json", "--output-dir", "o", "--label-smoothing", "1"])
