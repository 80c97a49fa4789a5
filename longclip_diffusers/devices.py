"""Which device and dtype to run a pipeline on when the user does not say."""

from __future__ import annotations

import torch


def default_device() -> str:
    """``"cuda"`` if available, else ``"mps"`` (Apple silicon), else ``"cpu"``."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def inference_dtype(device: str | torch.device) -> torch.dtype:
    """float16 on an accelerator (half the memory, the dtype SD weights ship in); float32 on the
    CPU, where half precision is slow or unsupported."""
    return torch.float32 if torch.device(device).type == "cpu" else torch.float16
