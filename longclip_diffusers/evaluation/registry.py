"""Picking a data set loader by name, with the error a user needs when the name or root is wrong."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from ..errors import InputNotFoundError, InvalidArgumentError

T = TypeVar("T")


def load_named(loaders: Mapping[str, Callable[[Path], T]], name: str, root: str | Path, kind: str) -> T:
    """``loaders[name](root)``; ``kind`` ("retrieval", "classification") names the family in errors."""
    if name not in loaders:
        raise InvalidArgumentError(f"unknown {kind} data set {name!r}: choose one of {', '.join(loaders)}")
    root = Path(root)
    if not root.exists():
        raise InputNotFoundError(f"data root {root} does not exist: pass the folder of {name}")
    return loaders[name](root)
