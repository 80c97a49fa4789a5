"""Reading checkpoint files into a plain ``{name: tensor}`` state dict, safely.

Pickled files go through ``torch.load(weights_only=True)`` only, which refuses (without running
it) anything but tensors and plain containers; a pickle can otherwise run code (docs/checkpoint-format.md).
``.safetensors`` files hold nothing but tensors. Every failure is a
:class:`~longclip_diffusers.errors.CheckpointError` with the reason and the fix.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"

_ZIP_MAGIC = b"PK\x03\x04"
# every pickle protocol >= 2 (torch's legacy format included) opens with the PROTO opcode
_PICKLE_MAGIC = b"\x80"


#: Picks the keys to read from ``{key: shape}`` of a file.
KeySelector = Callable[[Mapping[str, Sequence[int]]], Iterable[str]]


def read_state_dict(path: str | os.PathLike, select: KeySelector | None = None) -> dict[str, torch.Tensor]:
    """Read a ``.pt/.pth/.bin/.ckpt`` (weights only) or ``.safetensors`` file into a state dict on
    the CPU, unwrapping ``{"state_dict": ...}`` and DDP's ``module.`` prefixes.

    ``select`` gets every key with its shape and names the keys to keep; a ``.safetensors`` file
    then reads only those (the text encoder of a 7 GB checkpoint without its UNet)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at '{path}'. Fix: check the path.")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        return as_state_dict(_load_safetensors(path, select), path)
    if suffix in PICKLE_SUFFIXES:
        state_dict = as_state_dict(_load_pickle(path), path)
        if select is None:
            return state_dict
        return {key: state_dict[key] for key in select({k: tuple(v.shape) for k, v in state_dict.items()})}
    raise CheckpointError(
        f"'{path}' has the extension '{path.suffix}'; checkpoints are read from "
        f"{', '.join(PICKLE_SUFFIXES)} or {SAFETENSORS_SUFFIX} files. "
        "Fix: rename the file if it is one of those."
    )


def as_state_dict(obj: Any, source: str | os.PathLike = "the checkpoint") -> dict[str, torch.Tensor]:
    """Check that ``obj`` (a loaded file or an in-memory dict) is a ``{name: tensor}`` dict, after
    unwrapping ``{"state_dict": ...}`` and stripping ``module.`` prefixes."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{source} holds a {type(obj).__name__}, not a state dict of tensors. "
            "Fix: save the model's state_dict() (torch.save(model.state_dict(), path))."
        )
    not_tensors = [f"'{k}' ({type(v).__name__})" for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not obj or not_tensors:
        detail = f"entries that are not tensors: {', '.join(not_tensors[:5])}" if obj else "it is empty"
        raise CheckpointError(
            f"{source} is not a state dict of tensors ({detail}). "
            "Fix: save only the model's state_dict(), or wrap it as {'state_dict': ...}."
        )
    return {_strip_ddp_prefix(str(key)): value for key, value in obj.items()}


def _strip_ddp_prefix(key: str) -> str:
    # DistributedDataParallel saves its wrapped model under "module."
    return key[len("module.") :] if key.startswith("module.") else key


def _load_safetensors(path: Path, select: KeySelector | None = None) -> dict[str, torch.Tensor]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        if select is None:
            return load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
            return {key: handle.get_tensor(key) for key in select(shapes)}
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError
        raise CheckpointError(
            f"'{path}' is a truncated or corrupt safetensors file ({_first_line(exc)}). "
            "Fix: download or export it again."
        ) from exc


def _load_pickle(path: Path) -> Any:
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        raise CheckpointError(f"'{path}' is empty. Fix: download or save the checkpoint again.")
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC)):
        raise CheckpointError(
            f"'{path}' is corrupt or not a PyTorch checkpoint (neither a torch zip archive nor a "
            "pickle). Fix: download or save the checkpoint again."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused '{path}': torch.load(weights_only=True) found something other than tensors "
            f"in the pickle ({_weights_only_reason(exc)}); nothing in it was run. Fix: if you trust "
            "the file, re-save just its state dict of tensors (or as .safetensors); otherwise get "
            "the checkpoint from its official source."
        ) from exc
    except RuntimeError as exc:
        if "TorchScript" in str(exc):
            raise CheckpointError(
                f"'{path}' is a TorchScript archive (like OpenAI's JIT CLIP files), which cannot be "
                "read as weights only. Fix: use the non-JIT state dict (e.g. save "
                "model.state_dict() after clip.load(..., jit=False) in a trusted environment)."
            ) from exc
        raise _corrupt(path, exc) from exc
    except Exception as exc:  # zipfile, EOF and storage errors all mean the bytes are damaged
        raise _corrupt(path, exc) from exc


def _corrupt(path: Path, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"'{path}' is truncated or corrupt ({_first_line(exc) or type(exc).__name__}). "
        "Fix: download or save the checkpoint again."
    )


def _weights_only_reason(exc: BaseException) -> str:
    """torch's message is a page of advice; keep the line that says what was refused."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for marker in ("GLOBAL", "Unsupported"):
        for line in lines:
            if marker in line:
                return line
    return lines[-1] if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
