"""Atomic outputs: a folder or file appears complete or not at all, and failures leave nothing."""

from __future__ import annotations

import os
import stat

import pytest

from longclip_diffusers import OutputExistsError, atomic_output_dir, atomic_write_file


def test_output_dir_appears_only_when_the_block_completes(tmp_path):
    out = tmp_path / "out"
    with atomic_output_dir(out) as staging:
        (staging / "a.txt").write_text("a")
        assert not out.exists()
        assert staging.parent == tmp_path
    assert (out / "a.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("error", [ValueError("bad input"), KeyboardInterrupt()])
def test_failure_inside_the_block_leaves_nothing(tmp_path, error):
    out = tmp_path / "out"
    with pytest.raises(type(error)):
        with atomic_output_dir(out) as staging:
            (staging / "half.bin").write_bytes(b"x")
            raise error
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_before_the_block_runs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="overwrit"):
        with atomic_output_dir(out):
            pytest.fail("the block must not run")
    assert (out / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_replaces_the_old_dir_only_once_the_new_one_is_complete(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_output_dir(out, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
        assert (out / "old.txt").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_overwrite_keeps_the_old_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out, overwrite=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("disk full")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_appearing_during_the_block_is_not_clobbered(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputExistsError):
        with atomic_output_dir(out) as staging:
            (staging / "new.txt").write_text("new")
            out.mkdir()
            (out / "theirs.txt").write_text("theirs")
    assert sorted(p.name for p in out.iterdir()) == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_missing_parent_folders_are_created(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with atomic_output_dir(out) as staging:
        (staging / "x").write_text("x")
    assert (out / "x").is_file()


def test_atomic_file_replaces_the_old_file_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with atomic_write_file(target) as staging:
        assert staging.suffix == ".json" and staging.parent == tmp_path
        staging.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_failed_atomic_file_write_keeps_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write_file(target) as staging:
            staging.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_atomic_file_can_refuse_an_existing_file(tmp_path):
    target = tmp_path / "weights.safetensors"
    target.write_text("old")
    with pytest.raises(OutputExistsError):
        with atomic_write_file(target, overwrite=False):
            pytest.fail("the block must not run")
    assert target.read_text() == "old"


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_output_dir_gets_the_umask_modes_not_the_private_temp_ones(tmp_path, umask_027):
    out = tmp_path / "out"
    with atomic_output_dir(out) as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "weights.bin").write_bytes(b"x")
        (staging / "private.txt").write_text("x")
        (staging / "private.txt").chmod(0o600)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "sub").stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "sub" / "weights.bin").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "private.txt").stat().st_mode) == 0o640


def test_atomic_file_gets_the_umask_mode_not_the_private_temp_one(tmp_path, umask_027):
    target = tmp_path / "image.png"
    with atomic_write_file(target) as staging:
        staging.write_bytes(b"png")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
