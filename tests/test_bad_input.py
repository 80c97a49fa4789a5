"""Bad input, tried as a user would (issue "stop early, say it in one line, never loop or
overwrite"): one test per row of its table, in its order. Each mistake stops before any work
with one line that names the fix, exits non-zero and leaves nothing behind."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import re
import shlex
import socket
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import torch
from huggingface_hub import constants as hub_constants

from longclip_diffusers.cli.main import main
from longclip_diffusers.errors import (
    DeviceNotAvailableError,
    ModelNotAvailableError,
    UnreadableDataError,
    VocabularyMismatchError,
)
from longclip_diffusers.io import loading
from longclip_diffusers.io.export import save_text_encoder
from longclip_diffusers.length.tokens import PromptWord
from longclip_diffusers.tiny import (
    tiny_clip_tokenizer,
    tiny_openai_state_dict,
    tiny_text_encoder,
    write_tiny_caption_set,
)
from longclip_diffusers.training import longclip as train_script
from longclip_diffusers.training.checkpointing import TrainingProgress
from longclip_diffusers.training.data import LISTED_UNREADABLE
from longclip_diffusers.training.loop import count_unreadable, skipped_summary

REPO = Path(__file__).resolve().parent.parent


def one_error_line(capsys) -> str:
    """The stderr of a failed command: exactly one ``error: ...`` line, no traceback."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def error_after_progress(capsys) -> str:
    """The stderr of a run that failed after it started: progress bars, then one ``error: ...``
    line as the last, and no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("error: "), lines[-3:]
    assert sum(line.startswith("error: ") for line in lines) == 1
    return lines[-1]


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    return write_tiny_caption_set(tmp_path_factory.mktemp("data"), count=20, long_words=30)


def train_argv(base_dir, captions, image_root, output_dir, *extra) -> list[str]:
    return [
        "--base-model",
        str(base_dir),
        "--data",
        str(captions),
        "--image-root",
        str(image_root),
        "--output-dir",
        str(output_dir),
        "--batch-size",
        "4",
        "--pca-dim",
        "2",
        "--num-workers",
        "0",
        "--report-to",
        "none",
        "--cpu",
        *extra,
    ]


# --- train_longclip.py with a wrong --image-root (no image readable) ------------------------


def test_training_on_an_empty_image_folder_stops_at_once_with_one_line_and_writes_nothing(
    base_dir, captions, tmp_path, capsys
):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    assert train_script.main(train_argv(base_dir, captions, tmp_path / "empty", out)) == 1
    line = one_error_line(capsys)
    assert "none of the first 16 images can be read" in line and "--image-root" in line
    assert not out.exists()  # no logs/, no checkpoints/


@pytest.mark.slow
def test_training_stops_when_more_than_the_allowed_share_of_images_is_unreadable(base_dir, tmp_path, capsys):
    captions = write_tiny_caption_set(tmp_path / "data", count=64, image_size=32, long_words=30)
    for index in range(16, 48):  # half of them, past the first 16 which are tried before the run
        (tmp_path / "data" / f"image_{index:04d}.png").unlink()
    batch = ["--batch-size", "64", "--epochs", "5"]  # 4 epochs read the 256 images the share is judged on
    assert train_script.main(train_argv(base_dir, captions, tmp_path / "data", tmp_path / "strict", *batch)) == 1
    expected = "128 of the 256 images read so far cannot be read (50%; --max-unreadable is 0.05)"
    assert expected in error_after_progress(capsys)
    assert not (tmp_path / "strict" / "config.json").exists()

    lenient = train_argv(
        base_dir, captions, tmp_path / "data", tmp_path / "lenient", *batch, "--max-unreadable", "0.6"
    )
    assert train_script.main(lenient) == 0
    summary = json.loads((tmp_path / "lenient" / "training_summary.json").read_text())
    assert summary["skipped_count"] == 5 * 32 and len(summary["skipped_images"]) == LISTED_UNREADABLE
    assert "skipped 160 unreadable image(s) of 320 read" in capsys.readouterr().out


def test_unreadable_images_are_counted_and_only_the_first_few_listed():
    progress = TrainingProgress()
    for batch in range(30):
        skipped = [(f"missing/{batch}-{i}.png", "FileNotFoundError") for i in range(2)]
        count_unreadable(progress, 100, skipped, max_share=0.05, log=False)
    assert progress.skipped_count == 60 and progress.samples_read == 3000
    assert len(progress.skipped) == LISTED_UNREADABLE
    summary = skipped_summary(progress)
    assert summary.startswith("skipped 60 unreadable image(s) of 3000 read")
    assert summary.endswith(f"... and {60 - LISTED_UNREADABLE} more")
    assert len(summary.splitlines()) == LISTED_UNREADABLE + 2


def test_no_readable_image_stops_a_run_even_when_every_share_is_allowed():
    progress = TrainingProgress()
    with pytest.raises(UnreadableDataError, match="256 of the 256 images"):
        for _ in range(64):
            count_unreadable(progress, 4, [("a.png", "OSError")] * 4, max_share=1.0, log=False)


# --- train_longclip.py --output-dir pointing at a file ------------------------------------------


def test_an_output_dir_that_is_a_file_is_refused_in_one_line(base_dir, captions, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert train_script.main(train_argv(base_dir, captions, captions.parent, target)) == 1
    line = one_error_line(capsys)
    assert f"--output-dir {target} is a file" in line
    assert target.read_text() == "mine"


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(13, "Permission denied", "/srv/out"),
        IsADirectoryError(21, "Is a directory", "/srv/captions"),
        NotADirectoryError(20, "Not a directory", "/srv/file/out"),
    ],
)
def test_a_path_the_system_refuses_ends_a_training_script_in_one_line(error, capsys):
    from longclip_diffusers.training.loop import run_then_teardown

    def refuse(_args):
        raise error

    assert run_then_teardown(refuse, None) == 1
    assert one_error_line(capsys) == f"error: {error}"


# --- benchmarks/reproduce.py --quick -------------------------------------------------------


def benchmark_script(name: str):
    """A script of benchmarks/ as a module (the package never imports them)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_quick_reproduction_writes_to_a_temporary_folder_never_over_the_committed_results(monkeypatch, capsys):
    reproduce = benchmark_script("reproduce")
    written = []

    def fake_write_results(result, out_dir, command, quick):
        written.append(Path(out_dir))
        md = Path(out_dir) / "reproduction.md"
        md.write_text("table")
        return {"md": md}

    monkeypatch.setattr(reproduce, "run_experiment", lambda work_dir, config: None)
    monkeypatch.setattr(reproduce, "write_results", fake_write_results)
    assert reproduce.main(["--quick"]) == 0
    out_dir = written[0]
    try:
        assert out_dir.resolve() != reproduce.RESULTS_DIR.resolve()
        assert out_dir.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
        assert str(out_dir) in capsys.readouterr().out
    finally:
        (out_dir / "reproduction.md").unlink()
        out_dir.rmdir()
    assert reproduce.parse_args([]).out_dir == reproduce.RESULTS_DIR  # the full run: the committed table
    help_text = reproduce.build_parser().format_help()
    assert "few minutes" not in help_text and "under a minute" in help_text and "temporary folder" in help_text


# --- the hf download commands of the README and the loaders' errors ------------------------


def _offline_commands() -> list[str]:
    """The `hf download` commands the loaders print when the hub cannot be reached."""
    calls = [
        lambda: loading.resolve_source("BeichenZhang/LongCLIP-L"),
        lambda: loading.resolve_source("mderakhshani/TULIP"),
        lambda: loading.resolve_source("someone/clip-model"),
        lambda: loading.resolve_pipeline("someone/pipeline"),
        lambda: loading.load_tokenizer("someone/tokenizer"),
    ]
    commands = []
    for call in calls:
        with pytest.raises(ModelNotAvailableError) as caught:
            call()
        commands += re.findall(r"`(hf download [^`]*)`", str(caught.value))
    return commands


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    return re.findall(r"^\s*(hf download .*?)$", text, flags=re.MULTILINE) + re.findall(r"`(hf download [^`]*)`", text)


def test_every_printed_hf_download_command_asks_the_installed_hf_for_exactly_the_files_named(monkeypatch):
    import huggingface_hub.cli.download as hf_download
    from huggingface_hub.cli.hf import app

    calls = []

    def record(**kwargs) -> str:
        calls.append(kwargs)
        return "/x"

    monkeypatch.setattr(hf_download, "snapshot_download", record)
    monkeypatch.setattr(hf_download, "hf_hub_download", record)
    commands = _offline_commands() + _readme_commands()
    assert len(commands) >= 7
    for command in commands:
        words = shlex.split(command)[2:]
        local_dir = words[words.index("--local-dir") + 1]
        named = [w for i, w in enumerate(words[1:], 1) if not w.startswith("--") and words[i - 1] != "--local-dir"]
        calls.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "Ignoring `--include` since filenames have been explicitly set"
            app.main(args=["download", *words], prog_name="hf", standalone_mode=False)
        (call,) = calls
        asked = call.get("allow_patterns") or [call["filename"]]
        assert (call["repo_id"], sorted(asked), call["local_dir"]) == (words[0], sorted(named), local_dir), command


# --- a hub id while offline ----------------------------------------------------------------


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    """The hub as seen without a connection: every request refused (and counted), huggingface_hub's
    back-off waits recorded instead of slept, an empty hub cache, HF_HUB_OFFLINE unset."""
    from huggingface_hub.utils import _http

    http = importlib.import_module(type(huggingface_hub.get_session()).__module__.split(".")[0])
    requests: list[str] = []

    def refuse(request):
        requests.append(str(request.url))
        raise http.ConnectError("connection refused", request=request)

    previous = _http._GLOBAL_CLIENT_FACTORY
    huggingface_hub.set_client_factory(lambda: http.Client(transport=http.MockTransport(refuse)))
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    yield SimpleNamespace(requests=requests, sleeps=sleeps)
    huggingface_hub.set_client_factory(previous)


@pytest.mark.parametrize(
    "load",
    [
        lambda: loading.load_text_encoder("BeichenZhang/LongCLIP-L"),
        lambda: loading.load_text_encoder("mderakhshani/TULIP"),
        lambda: loading.resolve_pipeline("stabilityai/stable-diffusion-xl-base-1.0"),
    ],
    ids=["released-checkpoint", "tulip-repo", "pipeline"],
)
def test_an_unreachable_hub_fails_after_one_request_without_retries(unreachable_hub, load):
    with pytest.raises(ModelNotAvailableError, match="hf download"):
        load()
    assert unreachable_hub.sleeps == [] and len(unreachable_hub.requests) == 1


def test_hf_hub_offline_set_after_import_means_no_request_at_all(unreachable_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError):
        loading.load_text_encoder("BeichenZhang/LongCLIP-L")
    assert unreachable_hub.requests == []


# --- device="cuda" without CUDA; eval --device cuda -----------------------------------------


def test_a_device_this_machine_lacks_is_refused_naming_the_available_ones(base_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceNotAvailableError, match=r"'cuda' is not available.*available here: cpu"):
        loading.load_text_encoder(base_dir, device="cuda")
    # checked before the data set (the --root here does not exist) and before any model
    argv = ["eval", "retrieval", "--model", str(base_dir), "--dataset", "urban1k", "--root", str(tmp_path / "no")]
    assert main([*argv, "--device", "cuda"]) == 1
    assert "available here: cpu" in one_error_line(capsys)
    with pytest.raises(SystemExit):  # the benchmark scripts' parsers check it too
        benchmark_script("bench_train").main(["--device", "cuda"])
    assert "available here: cpu" in capsys.readouterr().err


def test_a_gpu_index_past_the_machine_s_gpus_is_refused_naming_the_ones_there(monkeypatch):
    from longclip_diffusers.devices import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [str(check_device(name)) for name in ("cuda", "cuda:1", "cpu")] == ["cuda", "cuda:1", "cpu"]
    with pytest.raises(DeviceNotAvailableError, match=r"'cuda:2' is not available.*cpu, cuda:0, cuda:1"):
        check_device("cuda:2")
    with pytest.raises(DeviceNotAvailableError, match="'gpu' is not a torch device"):
        check_device("gpu")


# --- generate --pipeline some.pt ------------------------------------------------------------


def test_generate_with_a_checkpoint_file_as_pipeline_says_it_is_a_file(tmp_path, capsys):
    checkpoint = tmp_path / "some.pt"
    checkpoint.write_bytes(b"weights")
    out = tmp_path / "cat.png"
    assert main(["generate", "--prompt", "a cat", "--pipeline", str(checkpoint), "--out", str(out)]) == 1
    line = one_error_line(capsys)
    assert "is a file" in line and "--long-clip" in line and "does not exist" not in line
    assert not out.exists()


# --- train_longclip.py --data some_folder/ --------------------------------------------------


def test_training_data_given_as_a_folder_names_the_caption_file_in_it(base_dir, captions, tmp_path, capsys):
    argv = train_argv(base_dir, captions.parent, captions.parent, tmp_path / "out")
    assert train_script.main(argv) == 1
    line = one_error_line(capsys)
    assert "is a folder" in line and "captions.jsonl" in line and "does not exist" not in line


# --- stretch --keep 77 on a 77-position encoder ---------------------------------------------


def test_stretch_that_would_keep_every_row_is_refused_instead_of_reported_as_done(tmp_path, capsys):
    source = tmp_path / "text_encoder"
    save_text_encoder(tiny_text_encoder(), source, tokenizer=tiny_clip_tokenizer())
    assert main(["stretch", str(source), str(tmp_path / "out"), "--keep", "77"]) == 1
    assert "gives 77: nothing would be stretched" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


# --- generate --steps -1 (and the other numbers every CLI checks before any work) -----------


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--prompt", "a cat", "--tiny-random", "--out", "x.png", "--steps", "-1"],
        ["generate", "--prompt", "a cat", "--tiny-random", "--out", "x.png", "--height", "100"],
        ["generate", "--prompt", "a cat", "--tiny-random", "--out", "x.png", "--guidance", "nan"],
        ["eval", "retrieval", "--model", "m", "--dataset", "urban1k", "--root", "r", "--batch-size", "0"],
        [
            "eval",
            "length-curve",
            "--model",
            "m",
            "--dataset",
            "urban1k",
            "--root",
            "r",
            "--out",
            "o",
            "--lengths",
            "1",
        ],
        ["demo", "--tiny-random", "--port", "70000"],
    ],
    ids=["steps", "height", "guidance", "batch-size", "lengths", "port"],
)
def test_numbers_out_of_range_are_refused_by_the_parser(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"argument {argv[-2]}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# --- eval length-curve --out EXISTING_FILE --------------------------------------------------


def test_length_curve_into_an_existing_file_fails_before_the_evaluation(base_dir, tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("mine")
    argv = ["eval", "length-curve", "--model", str(base_dir), "--dataset", "urban1k", "--root", str(tmp_path / "no")]
    assert main([*argv, "--out", str(out)]) == 1  # before the (missing) data set is even read
    assert "--out" in one_error_line(capsys)
    assert out.read_text() == "mine"


# --- demo --port already in use -------------------------------------------------------------


def test_demo_on_a_port_in_use_names_the_port_flag(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--tiny-random", "--port", str(port)]) == 1
    line = one_error_line(capsys)
    assert f"port {port}" in line and "--port" in line and "server_port" not in line


# --- a tiny-vocabulary .pt in load_* --------------------------------------------------------


def test_a_checkpoint_with_a_small_vocabulary_names_a_fix_the_loaders_have(tmp_path, monkeypatch):
    monkeypatch.setenv(loading.CACHE_ENV, str(tmp_path / "cache"))
    checkpoint = tmp_path / "tiny.pt"
    torch.save(tiny_openai_state_dict(), checkpoint)
    with pytest.raises(VocabularyMismatchError) as caught:
        loading.load_text_encoder(checkpoint)
    message = str(caught.value)
    assert "bos_token_id=" not in message and f"longclip-diffusers convert {checkpoint} OUT --tokenizer" in message
    assert not any((tmp_path / "cache").glob("*/config.json"))


# --- README token_report section --------------------------------------------------------------


def test_the_readme_token_report_names_the_real_prompt_word_fields():
    readme = (REPO / "README.md").read_text()
    (listed,) = re.findall(r"\(PromptWord: ([^)]*)\)", readme)
    assert listed.split(", ") == [field.name for field in dataclasses.fields(PromptWord)]
