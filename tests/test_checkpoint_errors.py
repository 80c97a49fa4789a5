"""Bad checkpoints are refused with a CheckpointError naming the problem, and unsafe pickles are
never executed."""

from __future__ import annotations

import os
import pickle
import re

import pytest
import torch
from safetensors.torch import save_file

from longclip_diffusers import CheckpointError, convert_checkpoint, read_state_dict
from longclip_diffusers.tiny import tiny_openai_state_dict


class _MarkerPayload:
    """A pickle that creates a file when unpickled: stands in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def state_dict():
    return tiny_openai_state_dict(layers=1, vision_layers=1)


@pytest.fixture
def saved(tmp_path, state_dict):
    path = tmp_path / "longclip.pt"
    torch.save(state_dict, path)
    return path


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file at .*nothing.pt.*check the path"):
        read_state_dict(tmp_path / "nothing.pt")


def test_truncated_torch_file_is_refused(tmp_path, saved):
    data = saved.read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(path)


def test_truncated_safetensors_file_is_refused(tmp_path, state_dict):
    path = tmp_path / "whole.safetensors"
    save_file(state_dict, path)
    cut = tmp_path / "truncated.safetensors"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated or corrupt safetensors"):
        read_state_dict(cut)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_corrupt_bytes_are_refused(tmp_path, suffix):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"this is no checkpoint" + bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match="corrupt"):
        read_state_dict(path)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        read_state_dict(path)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_executed(tmp_path, writer):
    marker = tmp_path / "code-ran"
    payload = _MarkerPayload(marker)
    # the payload works: an unrestricted unpickler runs it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_MarkerPayload(probe)))
    assert probe.exists()

    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save({"token_embedding.weight": torch.zeros(2, 2), "extra": payload}, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle)
    with pytest.raises(CheckpointError, match="refused .*nothing in it was run"):
        read_state_dict(path)
    with pytest.raises(CheckpointError, match="refused"):
        convert_checkpoint(path)
    assert not marker.exists()


def test_pickle_of_a_list_is_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        read_state_dict(path)


def test_dict_with_non_tensor_entries_is_named(tmp_path):
    path = tmp_path / "training-state.pt"
    torch.save({"weights": torch.zeros(2), "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="'epoch' \\(int\\)"):
        read_state_dict(path)


def test_torchscript_archive_is_refused(tmp_path):
    path = tmp_path / "jit.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        read_state_dict(path)


def test_unknown_extension_is_refused(tmp_path, saved):
    path = tmp_path / "longclip.zip"
    os.replace(saved, path)
    with pytest.raises(CheckpointError, match="extension '.zip'"):
        read_state_dict(path)


def test_dict_that_is_not_clip_is_refused():
    with pytest.raises(CheckpointError, match="holds no CLIP text encoder .no '.token_embedding.weight' key"):
        convert_checkpoint({"encoder.weight": torch.zeros(4, 4)})


def test_incomplete_transformers_layout_text_encoder_is_named_incomplete():
    with pytest.raises(
        CheckpointError, match="has no 'text_model.embeddings.position_embedding.weight': the file is incomplete"
    ):
        convert_checkpoint({"text_model.embeddings.token_embedding.weight": torch.zeros(4, 4)}, kind="text")


def test_missing_key_is_named(state_dict):
    broken = {k: v for k, v in state_dict.items() if k != "transformer.resblocks.0.ln_2.bias"}
    with pytest.raises(CheckpointError, match="missing keys 'transformer.resblocks.0.ln_2.bias'"):
        convert_checkpoint(broken, kind="text")


def test_missing_vision_key_is_named(state_dict):
    broken = {k: v for k, v in state_dict.items() if k != "visual.ln_post.weight"}
    with pytest.raises(CheckpointError, match="missing keys 'visual.ln_post.weight'"):
        convert_checkpoint(broken)


def test_extra_key_is_named(state_dict):
    with pytest.raises(CheckpointError, match="unexpected keys 'optimizer.momentum'"):
        convert_checkpoint({**state_dict, "optimizer.momentum": torch.zeros(3)})


def test_extra_resblock_beyond_a_gap_shows_up_as_missing_keys(state_dict):
    stray = {"transformer.resblocks.2.ln_1.weight": torch.ones(64)}
    with pytest.raises(CheckpointError, match="missing keys 'transformer.resblocks.1.attn"):
        convert_checkpoint({**state_dict, **stray})


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("positional_embedding_res", (248, 32)),
        ("visual.proj", (64, 16)),
        ("transformer.resblocks.0.mlp.c_proj.weight", (64, 128)),
    ],
)
def test_inconsistent_shape_is_named(state_dict, key, shape):
    broken = {**state_dict, key: torch.zeros(shape)}
    with pytest.raises(CheckpointError, match=re.escape(f"inconsistent shapes: '{key}' is {list(shape)}")):
        convert_checkpoint(broken)


def test_vision_positions_that_are_no_patch_grid_are_refused(state_dict):
    broken = {**state_dict, "visual.positional_embedding": torch.zeros(20, 64)}
    with pytest.raises(CheckpointError, match="not a square grid"):
        convert_checkpoint(broken)
