"""A second module tree over the same weights, so one tree can be changed without the other.

Stretching SDXL's ``text_encoder_2`` replaces its position table in place. When that encoder is
shared with a stock pipeline (``from_pipe``), stretching it in place would change the stock
pipeline too; a full copy would cost another 1.4 GB in fp16. A twin costs nothing: new module
objects and config, the same parameter and buffer storage. Replacing a submodule or a parameter
of the twin (stretching, LoRA injection, ``.to()``) leaves the original alone; writing into a
shared tensor in place (``fuse_lora``, training) is seen by both, exactly as for the UNet and VAE
that ``from_pipe`` shares.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def twin_sharing_weights(model: ModuleT) -> ModuleT:
    """A new instance of ``model``'s class and config whose tensors share ``model``'s storage.

    ``model`` must be a transformers model (constructed from ``model.config``) without injected
    adapters or offload hooks; its hooks, if any, are not carried over.
    """
    with torch.device("meta"):
        twin = type(model)(copy.deepcopy(model.config))
    twin.load_state_dict(model.state_dict(), assign=True, strict=True)
    for name, buffer in model.named_buffers():
        owner_name, _, attribute = name.rpartition(".")
        owner = twin.get_submodule(owner_name)
        twin_buffer = owner._buffers[attribute]
        if twin_buffer is None or twin_buffer.is_meta:
            owner._buffers[attribute] = buffer
    return twin.train(model.training)
