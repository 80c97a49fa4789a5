"""The released TULIP hub repo as a source: its one checkpoint file is found (hub listing, or the
hub cache offline), converted as TULIP despite open_clip's leftover position table, and cached;
offline without it, one clear error."""

from __future__ import annotations

import hashlib
import os

import huggingface_hub
import pytest
import torch

import longclip_diffusers.io.loading
from longclip_diffusers import (
    CheckpointError,
    ModelNotAvailableError,
    TulipModel,
    TulipTextModel,
    convert_tulip_checkpoint,
    load_clip_model,
    load_text_encoder,
    load_tokenizer,
)
from longclip_diffusers.cli.main import main
from longclip_diffusers.tiny import tiny_clip_tokenizer, tiny_tulip_state_dict

REPO = "mderakhshani/TULIP"
# CLIP's real vocabulary size: a checkpoint file carries no tokenizer, so CLIP's special ids are used
CLIP_VOCAB, CLIP_BOS, CLIP_EOS = 49408, 49406, 49407


@pytest.fixture(scope="module")
def tulip_state():
    return tiny_tulip_state_dict(seed=5, vocab_size=CLIP_VOCAB, with_vision=True)


@pytest.fixture(scope="module")
def released(tulip_state):
    """A full stage-2 release: open_clip's unused 77-row table is still there, so by its keys the
    file looks like plain CLIP."""
    leftover = dict(tulip_state, positional_embedding=torch.randn(77, 64))
    return {"epoch": 1, "state_dict": {f"module.{key}": value for key, value in leftover.items()}}


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty hub cache in tmp_path, offline (huggingface_hub reads HF_HUB_OFFLINE at import)."""
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    return hub


def put_in_hub_cache(hub, checkpoints: dict) -> None:
    """Lay ``{file name: state dict}`` out as huggingface_hub caches a download of REPO: blobs
    named by hash, snapshot links to them, ``refs/main`` naming the snapshot."""
    repo = hub / f"models--{REPO.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for name, state in checkpoints.items():
        staging = repo / "blobs" / "incoming"
        torch.save(state, staging)
        blob = repo / "blobs" / hashlib.sha256(staging.read_bytes()).hexdigest()
        staging.rename(blob)
        (repo / "snapshots" / revision / name).symlink_to(os.path.relpath(blob, repo / "snapshots" / revision))


@pytest.fixture
def tokens():
    rows = torch.randint(0, CLIP_BOS, (2, 40), generator=torch.Generator().manual_seed(3))
    rows[:, 0] = CLIP_BOS
    rows[0, 25], rows[1, 39] = CLIP_EOS, CLIP_EOS
    return rows


def assert_same_text_features(encoder, tulip_state, tokens):
    expected = convert_tulip_checkpoint(tulip_state, "text")
    with torch.no_grad():
        torch.testing.assert_close(encoder(tokens).pooler_output, expected(tokens).pooler_output)


def test_offline_without_the_file_one_error_names_the_repo_what_to_download_and_what_to_pass(offline_hub, tmp_path):
    for load in (load_text_encoder, load_clip_model):
        with pytest.raises(ModelNotAvailableError) as error:
            load(REPO, cache_dir=tmp_path / "cache")
        message = str(error.value)
        assert f"hf download {REPO} --include '*.pt'" in message and "--local-dir ./TULIP" in message
        assert "pass the path of the checkpoint file in ./TULIP" in message
        assert "\n" not in message
    assert not (tmp_path / "cache").exists()


def test_cached_release_loads_offline_by_hub_id_as_tulip_and_converts_once(
    offline_hub, tmp_path, released, tulip_state, tokens, monkeypatch
):
    put_in_hub_cache(offline_hub, {"tulip-L-14.pt": released})
    cache = tmp_path / "cache"
    # converted without tulip=True, the leftover table would make these CLIPTextModel / CLIPModel
    encoder = load_text_encoder(REPO, cache_dir=cache)
    assert type(encoder) is TulipTextModel
    assert_same_text_features(encoder, tulip_state, tokens)
    assert isinstance(load_clip_model(REPO, cache_dir=cache), TulipModel)

    def convert_again(*args, **kwargs):
        raise AssertionError("converted again instead of reading the cache")

    monkeypatch.setattr(longclip_diffusers.io.loading, "export_checkpoint", convert_again)
    assert_same_text_features(load_text_encoder(REPO, cache_dir=cache), tulip_state, tokens)
    assert isinstance(load_clip_model(REPO, cache_dir=cache), TulipModel)
    assert sorted(entry.name.rsplit("-", 1)[0] for entry in cache.iterdir()) == ["tulip-L-14-full", "tulip-L-14-text"]


def test_several_checkpoint_files_are_refused_with_their_names(offline_hub, released):
    put_in_hub_cache(offline_hub, {"tulip-B-16.pt": released, "tulip-L-14.pt": released})
    with pytest.raises(CheckpointError, match="tulip-B-16.pt, tulip-L-14.pt.*download one.*pass its local path"):
        load_text_encoder(REPO)


def test_online_the_one_checkpoint_in_the_repo_listing_is_downloaded(
    monkeypatch, tmp_path, released, tulip_state, tokens
):
    checkpoint = tmp_path / "downloaded" / "tulip-L-14.pt"
    checkpoint.parent.mkdir()
    torch.save(released, checkpoint)
    downloads = []

    def download(repo_id, filename):
        downloads.append((repo_id, filename))
        return str(checkpoint)

    monkeypatch.setattr(
        longclip_diffusers.io.loading,
        "list_repo_files",
        lambda repo_id: [".gitattributes", "README.md", "tulip-L-14.pt"],
    )
    monkeypatch.setattr(longclip_diffusers.io.loading, "hf_hub_download", download)
    # the hub answers (the tests run with HF_HUB_OFFLINE=1, which the loader honours)
    monkeypatch.setattr(longclip_diffusers.io.loading, "_hub_unreachable", lambda repo_id: False)
    encoder = load_text_encoder(REPO, cache_dir=tmp_path / "cache")
    assert downloads == [(REPO, "tulip-L-14.pt")]
    assert_same_text_features(encoder, tulip_state, tokens)


def test_tokenizer_of_the_repo_is_the_fallback_without_asking_the_hub(offline_hub, tmp_path):
    tiny_clip_tokenizer().save_pretrained(tmp_path / "tok")
    assert load_tokenizer(REPO, fallback=tmp_path / "tok").get_vocab() == tiny_clip_tokenizer().get_vocab()


def test_cli_convert_takes_the_hub_id_as_tulip(offline_hub, tmp_path, released):
    put_in_hub_cache(offline_hub, {"tulip-L-14.pt": released})
    tiny_clip_tokenizer().save_pretrained(tmp_path / "tok")
    out = tmp_path / "tulip-full"
    assert main(["convert", REPO, str(out), "--tokenizer", str(tmp_path / "tok")]) == 0
    # converted without the tulip flag, the leftover table would have made it a CLIPModel
    assert isinstance(load_clip_model(out), TulipModel)
