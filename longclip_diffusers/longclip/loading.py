"""``longclip.load``: the released function's ``(model, preprocess)`` from the project's loader."""

from __future__ import annotations

import os

import torch

from ..devices import default_device, inference_dtype
from ..errors import UnsupportedOptionError
from ..io.image_preprocessing import ClipImageTransform
from ..io.loading import load_clip_model
from .model import LongCLIP
from .tokenization import use_tokenizer_of


def load(
    name: str | os.PathLike,
    device: str | torch.device | None = None,
    jit: bool = False,
    download_root: str | os.PathLike | None = None,
    *,
    tokenizer: str | os.PathLike | None = None,
    torch_dtype: str | torch.dtype | None = None,
) -> tuple[LongCLIP, ClipImageTransform]:
    """``(model, preprocess)`` as the released ``longclip.load`` returns them.

    Args:
        name: a Long-CLIP checkpoint file (``longclip-L.pt``), a hub id
            (``BeichenZhang/LongCLIP-L``), a transformers ``CLIPModel`` folder, or a TULIP
            source: anything :func:`~longclip_diffusers.load_clip_model` takes. A plain OpenAI
            CLIP file is stretched to 248 positions, as that loader does by default.
        device: where the model goes (default: cuda, else mps, else cpu).
        jit: OpenAI's TorchScript models; Long-CLIP has none, so only False is accepted.
        download_root: where converted checkpoint files are kept (default
            :func:`~longclip_diffusers.io.loading.cache_root`).
        tokenizer: tokenizer folder or hub id for :func:`~.tokenization.tokenize` when ``name``
            carries none (default: CLIP-L's, Long-CLIP's own vocabulary).
        torch_dtype: the weights' dtype; by default float16 on a GPU and float32 on the CPU, as
            released.

    Returns:
        A :class:`~.model.LongCLIP` in eval mode, and the PIL image -> tensor transform at its
        image size (bicubic resize, centre crop, CLIP's mean and std).
    """
    if jit:
        raise UnsupportedOptionError(
            "jit=True loads OpenAI's TorchScript archives; Long-CLIP ships none and this port "
            "runs the transformers model. Fix: call longclip.load(..., jit=False)."
        )
    device = device or default_device()
    dtype = torch_dtype or inference_dtype(device)
    model = LongCLIP(load_clip_model(name, torch_dtype=dtype, device=device, cache_dir=download_root)).eval()
    use_tokenizer_of(name, fallback=tokenizer)
    return model, ClipImageTransform(size=model.input_resolution)
