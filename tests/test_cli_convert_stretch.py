"""``longclip-diffusers convert`` and ``stretch`` end to end, and every bad input: exit code 1, one
line of error, and no output folder (nor temporary folder) left behind."""

from __future__ import annotations

import json
import os
import subprocess

import huggingface_hub
import pytest
import torch
from safetensors import safe_open
from transformers import (
    CLIPModel,
    CLIPProcessor,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

from longclip_diffusers import convert_checkpoint, convert_tulip_checkpoint, save_text_encoder
from longclip_diffusers.cli.main import main
from longclip_diffusers.compat import text_transformer
from longclip_diffusers.tiny import (
    tiny_clip_tokenizer,
    tiny_openai_state_dict,
    tiny_sd_pipeline,
    tiny_text_encoder,
    tiny_tulip_state_dict,
)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tokenizer")
    tiny_clip_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return CLIPTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="module")
def state_dict():
    return tiny_openai_state_dict()


@pytest.fixture
def work(tmp_path):
    """The folder holding the inputs and the output; anything else left in it is a leak."""
    return tmp_path


@pytest.fixture
def checkpoint(work, state_dict):
    path = work / "longclip.pt"
    torch.save(state_dict, path)
    return path


def disk_keys(directory) -> list[str]:
    with safe_open(str(directory / "model.safetensors"), "pt") as weights:
        return list(weights.keys())


def saved_config(directory) -> dict:
    return json.loads((directory / "config.json").read_text())


def convert(*args, tokenizer_dir) -> int:
    return main(["convert", *map(str, args), "--tokenizer", str(tokenizer_dir)])


def test_convert_writes_a_full_model_processor_and_tokenizer(work, checkpoint, tokenizer_dir, tokenizer):
    out = work / "out"
    assert convert(checkpoint, out, tokenizer_dir=tokenizer_dir) == 0
    assert CLIPTokenizer.from_pretrained(out).model_max_length == 248
    assert CLIPProcessor.from_pretrained(out).tokenizer.model_max_length == 248
    assert saved_config(out)["text_config"]["eos_token_id"] == tokenizer.eos_token_id
    keys = disk_keys(out)
    assert any(k.startswith("text_model.") for k in keys) and any(k.startswith("vision_model.") for k in keys)

    ids = tokenizer(["a red cat on a small boat"], return_tensors="pt").input_ids
    pixels = torch.randn(1, 3, 32, 32)
    expected = convert_checkpoint(
        checkpoint, kind="full", bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    got = CLIPModel.from_pretrained(out)(input_ids=ids, pixel_values=pixels)
    expected_logits = expected(input_ids=ids, pixel_values=pixels).logits_per_image
    torch.testing.assert_close(got.logits_per_image, expected_logits)
    assert sorted(p.name for p in work.iterdir()) == ["longclip.pt", "out"]


def test_convert_text_only_writes_a_text_encoder(work, checkpoint, tokenizer_dir):
    out = work / "out"
    assert convert(checkpoint, out, "--text-only", tokenizer_dir=tokenizer_dir) == 0
    assert saved_config(out)["architectures"] == ["CLIPTextModel"]
    assert all(key.startswith("text_model.") for key in disk_keys(out))
    assert not (out / "preprocessor_config.json").exists()
    assert CLIPTextModel.from_pretrained(out).config.max_position_embeddings == 248


def test_convert_with_projection_and_dtype(work, checkpoint, tokenizer_dir):
    out = work / "out"
    code = convert(checkpoint, out, "--with-projection", "--dtype", "float16", tokenizer_dir=tokenizer_dir)
    assert code == 0
    assert saved_config(out)["architectures"] == ["CLIPTextModelWithProjection"]
    assert "text_projection.weight" in disk_keys(out)
    assert CLIPTextModelWithProjection.from_pretrained(out).dtype == torch.float16


@pytest.mark.parametrize(("extra", "positions"), [([], 248), (["--keep", "20", "--ratio", "2"], 134)])
def test_convert_stretches_a_plain_openai_checkpoint(work, tokenizer_dir, extra, positions):
    plain = work / "clip.pt"
    torch.save(tiny_openai_state_dict(context=77, two_position_tables=False), plain)
    out = work / "out"
    assert convert(plain, out, "--text-only", *extra, tokenizer_dir=tokenizer_dir) == 0
    assert saved_config(out)["max_position_embeddings"] == positions
    assert CLIPTokenizer.from_pretrained(out).model_max_length == positions


def test_convert_overwrite_replaces_an_existing_output(work, checkpoint, tokenizer_dir):
    out = work / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assert convert(checkpoint, out, "--text-only", "--overwrite", tokenizer_dir=tokenizer_dir) == 0
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").is_file()


class RunsCode:
    """A pickle payload: unpickling it would create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def corrupt_file(work, state_dict):
    whole = work / "whole.pt"
    torch.save(state_dict, whole)
    data = whole.read_bytes()
    whole.unlink()
    (work / "bad.pt").write_bytes(data[: len(data) // 2])


def malicious_pickle(work, state_dict):
    payload = {"token_embedding.weight": torch.zeros(2, 2), "payload": RunsCode(work / "ran")}
    torch.save(payload, work / "bad.pt")


def not_clip(work, state_dict):
    torch.save({"encoder.weight": torch.randn(4, 4), "decoder.bias": torch.randn(4)}, work / "bad.pt")


def missing_key(work, state_dict):
    dropped = "transformer.resblocks.1.mlp.c_fc.weight"
    torch.save({k: v for k, v in state_dict.items() if k != dropped}, work / "bad.pt")


def extra_key(work, state_dict):
    torch.save({**state_dict, "adapter.lora_A.weight": torch.randn(4, 4)}, work / "bad.pt")


def inconsistent_shape(work, state_dict):
    torch.save({**state_dict, "ln_final.weight": torch.ones(7)}, work / "bad.pt")


@pytest.mark.parametrize(
    ("make_bad_input", "reason"),
    [
        (corrupt_file, "corrupt"),
        (malicious_pickle, "weights_only"),
        (not_clip, "CLIP"),
        (missing_key, "missing"),
        (extra_key, "unexpected"),
        (inconsistent_shape, "shape"),
    ],
)
def test_bad_checkpoint_fails_in_one_line_and_leaves_nothing(
    work, state_dict, tokenizer_dir, capsys, make_bad_input, reason
):
    make_bad_input(work, state_dict)
    out = work / "out"
    assert convert(work / "bad.pt", out, tokenizer_dir=tokenizer_dir) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and reason in errors[0]
    assert not out.exists()
    assert sorted(p.name for p in work.iterdir()) == ["bad.pt"], "no temporary folder (or payload) left"


def test_existing_output_is_refused_untouched(work, checkpoint, tokenizer_dir, capsys):
    out = work / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert convert(checkpoint, out, tokenizer_dir=tokenizer_dir) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert sorted(p.name for p in work.iterdir()) == ["longclip.pt", "out"]


def test_default_tokenizer_offline_asks_for_a_local_one(work, checkpoint, tmp_path, monkeypatch, capsys):
    # huggingface_hub reads HF_HUB_OFFLINE when imported, before conftest sets it
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    out = work / "out"
    assert main(["convert", str(checkpoint), str(out)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "openai/clip-vit-large-patch14" in error and "--tokenizer DIR" in error
    assert not out.exists()


@pytest.fixture
def pipeline_dir(work):
    pipe = tiny_sd_pipeline()
    pipe.save_pretrained(work / "pipe")
    return work / "pipe", pipe


def test_stretch_a_pipeline_text_encoder_with_its_sibling_tokenizer(work, pipeline_dir):
    pipe_dir, pipe = pipeline_dir
    out = work / "out"
    assert main(["stretch", str(pipe_dir / "text_encoder"), str(out)]) == 0
    stretched = CLIPTextModel.from_pretrained(out)
    assert stretched.config.max_position_embeddings == 248
    assert all(key.startswith("text_model.") for key in disk_keys(out))
    saved_tokenizer = CLIPTokenizer.from_pretrained(out)
    assert saved_tokenizer.model_max_length == 248
    assert saved_tokenizer.get_vocab() == pipe.tokenizer.get_vocab()
    old = text_transformer(pipe.text_encoder).embeddings.position_embedding.weight
    new = text_transformer(stretched).embeddings.position_embedding.weight
    assert torch.equal(new[:20], old[:20]) and torch.equal(new[244], old[76])


def test_stretch_keeps_the_projection_class_and_short_prompt_features(work, tokenizer_dir, tokenizer):
    source = work / "text_encoder_2"
    model = tiny_text_encoder(with_projection=True, tokenizer=tokenizer)
    save_text_encoder(model, source)
    out = work / "out"
    options = ["--tokenizer", str(tokenizer_dir), "--keep", "20", "--ratio", "4"]
    assert main(["stretch", str(source), str(out), *options]) == 0
    assert saved_config(out)["architectures"] == ["CLIPTextModelWithProjection"]
    stretched = CLIPTextModelWithProjection.from_pretrained(out)
    ids = tokenizer(["a small red boat on the river"], return_tensors="pt").input_ids
    assert ids.shape[1] <= 20
    torch.testing.assert_close(stretched(ids).text_embeds, model(ids).text_embeds)


def test_stretch_refuses_a_checkpoint_file_and_writes_nothing(work, checkpoint, capsys):
    out = work / "out"
    assert main(["stretch", str(checkpoint), str(out), "--tokenizer", str(work)]) == 1
    assert "convert" in capsys.readouterr().err
    assert not out.exists()


def test_stretch_of_a_folder_that_is_not_clip_fails_cleanly(work, capsys):
    source = work / "not_clip"
    source.mkdir()
    (source / "config.json").write_text(json.dumps({"model_type": "t5"}))
    out = work / "out"
    assert main(["stretch", str(source), str(out)]) == 1
    assert "not CLIP" in capsys.readouterr().err
    assert sorted(p.name for p in work.iterdir()) == ["not_clip"]


def test_installed_command_shows_both_subcommands():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        ["longclip-diffusers", "--help"], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "convert" in result.stdout and "stretch" in result.stdout


def test_stretch_of_an_already_long_encoder_needs_an_explicit_ratio(work, pipeline_dir, capsys):
    pipe_dir, _ = pipeline_dir
    long_dir, again = work / "long", work / "again"
    assert main(["stretch", str(pipe_dir / "text_encoder"), str(long_dir)]) == 0
    assert main(["stretch", str(long_dir), str(again)]) == 1
    assert "already reads 248 tokens; pass --ratio explicitly" in capsys.readouterr().err
    assert not again.exists()
    assert main(["stretch", str(long_dir), str(again), "--ratio", "2"]) == 0
    assert saved_config(again)["max_position_embeddings"] == 20 + 228 * 2


def test_stretch_of_a_tulip_folder_says_it_needs_no_stretching(work, tokenizer_dir, tokenizer, capsys):
    source = work / "tulip"
    tulip = convert_tulip_checkpoint(
        tiny_tulip_state_dict(), "text", bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    save_text_encoder(tulip, source, tokenizer=tokenizer)
    out = work / "out"
    assert main(["stretch", str(source), str(out)]) == 1
    err = capsys.readouterr().err
    assert "rotary positions" in err and "set_context_length(encoder, N)" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--keep", "-1"], "pass 0 or more"),
        (["--keep", "2.5"], "not a whole number"),
        (["--ratio", "0"], "above 0"),
        (["--ratio", "nan"], "above 0"),
        (["--ratio", "x"], "not a number"),
    ],
)
@pytest.mark.parametrize("command", ["stretch", "convert"])
def test_bad_keep_or_ratio_fails_before_any_model_is_read(work, command, option, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, str(work / "missing"), str(work / "out"), *option])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "does not exist" not in err
