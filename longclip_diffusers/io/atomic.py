"""Write outputs so that a failure leaves nothing behind.

Everything is written to a temporary name in the destination's own folder (same file system, so
the final rename is atomic) and renamed into place only once complete. Any exception, including
``KeyboardInterrupt``, removes the temporary copy; an existing output is replaced only after its
successor is complete. The temporary names are created private (``tempfile``: 0700 / 0600), so
before the rename they get the modes a plain ``mkdir`` / ``open`` would have given under the
process umask: the output is as readable as any other file the user writes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputExistsError, PathKindError


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
        _apply_umask(staging)
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
    handle, name = tempfile.mkstemp(prefix=f".{target.stem}.tmp-", suffix=target.suffix, dir=target.parent)
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        refuse_existing_output(target, overwrite)
        _apply_umask(staging)
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
            f"{target} already exists; choose another output path or allow overwriting (--overwrite / overwrite=True)"
        )


def check_output_path(path: str | os.PathLike, *, folder: bool, flag: str) -> None:
    """Refuse, before any work, an output path a job could only fail on at its end: a file where
    ``folder`` output goes, a folder where a file is written, or a path inside a file. ``flag``
    (e.g. ``--out``) names the argument in the message."""
    target = Path(path)
    if folder and target.exists() and not target.is_dir():
        raise PathKindError(
            f"{flag} {target} is a file, but it names a folder to write into. Fix: pass a folder path."
        )
    if not folder and target.is_dir():
        raise PathKindError(f"{flag} {target} is a folder, but it names the file to write. Fix: pass a file path.")
    parent = next((p for p in target.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise PathKindError(f"{flag} {target} lies inside {parent}, which is a file. Fix: pass a path in a folder.")


def _apply_umask(staging: Path) -> None:
    """Give ``staging`` (a file, or a folder and everything in it) the default modes under the
    current umask: folders ``0o777 & ~umask``, files ``0o666 & ~umask``."""
    # os.umask can only be read by setting it; put it straight back
    umask = os.umask(0)
    os.umask(umask)
    folder_mode, file_mode = 0o777 & ~umask, 0o666 & ~umask
    if not staging.is_dir():
        os.chmod(staging, file_mode)
        return
    os.chmod(staging, folder_mode)
    for root, folders, files in os.walk(staging):
        for names, mode in ((folders, folder_mode), (files, file_mode)):
            for name in names:
                path = os.path.join(root, name)
                # chmod follows links: a link's target is not part of the output
                if not os.path.islink(path):
                    os.chmod(path, mode)


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
