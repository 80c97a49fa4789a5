"""Which device and dtype to run a pipeline on when the user does not say, and whether the one
they named exists here."""

from __future__ import annotations

import torch

from .errors import DeviceNotAvailableError


def default_device() -> str:
    """``"cuda"`` if available, else ``"mps"`` (Apple silicon), else ``"cpu"``."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def available_devices() -> list[str]:
    """The devices this machine can run on: ``cpu``, each CUDA GPU (``cuda:0`` ...), ``mps``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, once it is known to exist on this machine. Raises
    :class:`~longclip_diffusers.errors.DeviceNotAvailableError` naming the devices that do,
    instead of torch's ``AssertionError: Torch not compiled with CUDA enabled`` at the first
    ``.to(device)``."""
    available = available_devices()
    here = f"(available here: {', '.join(available)}). Fix: pass one of those, or leave the device out for {default_device()}."
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceNotAvailableError(f"'{device}' is not a torch device {here}") from None
    if parsed.type == "cpu" or str(parsed) in available:
        return parsed
    if parsed.type == "cuda" and parsed.index is None and torch.cuda.is_available():
        return parsed
    raise DeviceNotAvailableError(f"device '{device}' is not available on this machine {here}")


def inference_dtype(device: str | torch.device) -> torch.dtype:
    """float16 on an accelerator (half the memory, the dtype SD weights ship in); float32 on the
    CPU, where half precision is slow or unsupported."""
    return torch.float32 if torch.device(device).type == "cpu" else torch.float16
