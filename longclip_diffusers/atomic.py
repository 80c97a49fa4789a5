"""Write outputs so that a failure leaves nothing behind.

Everything is written to a temporary name in the destination's own folder (same file system, so
the final rename is atomic) and renamed into place only once complete. Any exception, including
``KeyboardInterrupt``, removes the temporary copy; an existing output is replaced only after its
successor is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputExistsError


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``path`` when the block succeeds.

    Raises :class:`OutputExistsError` (before the block runs, and again at the end in case
    something appeared meanwhile) when ``path`` exists and ``overwrite`` is false.
    """
    target = Path(path)
    refuse_existing_output(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        refuse_existing_output(target, overwrite)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_write_file(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary file path (same folder and suffix as ``path``) that becomes ``path`` when
    the block succeeds; on any exception it is deleted and ``path`` is left as it was.

    Replacing a single file is one atomic rename, so overwriting is allowed by default.
    """
    target = Path(path)
    refuse_existing_output(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{target.stem}.tmp-", suffix=target.suffix, dir=target.parent
    )
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        refuse_existing_output(target, overwrite)
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def refuse_existing_output(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise :class:`OutputExistsError` when ``path`` exists and ``overwrite`` is false; lets a
    long job refuse its output before doing the work."""
    target = Path(path)
    if not overwrite and (target.exists() or target.is_symlink()):
        raise OutputExistsError(
            f"{target} already exists; choose another output path or allow overwriting "
            "(--overwrite / overwrite=True)"
        )


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an old ``target`` is set aside first and deleted only
    after the rename succeeded (a directory cannot be replaced by one rename)."""
    if not (target.exists() or target.is_symlink()):
        os.replace(staging, target)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    aside = backup / target.name
    os.replace(target, aside)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(aside, target)
        shutil.rmtree(backup, ignore_errors=True)
        raise
    shutil.rmtree(backup, ignore_errors=True)
