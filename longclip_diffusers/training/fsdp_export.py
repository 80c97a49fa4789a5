"""The whole trained model out of a fully sharded (FSDP) run, for export.

Under FSDP each process holds only its shard of every parameter between steps, so the module
accelerate's ``unwrap_model`` returns cannot be saved as it is. PyTorch's
``FullyShardedDataParallel.summon_full_params`` gathers the whole parameters, here on the main
process only (``rank0_only``; https://pytorch.org/docs/stable/fsdp.html); they are copied to the
CPU and loaded into an empty model of the same class and training layout
(:func:`~.model_setup.empty_like_prepared`), which then exports like any unsharded model.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain

from torch import nn

_WRAPPER = "_fsdp_wrapped_module."


def full_model_for_export(
    prepared: nn.Module, model: nn.Module, is_main_process: bool, empty_model: Callable[[], nn.Module]
) -> nn.Module:
    """``model`` (inside ``prepared``) with whole parameters on the main process: when
    ``prepared`` is FSDP-wrapped, ``empty_model()`` loaded with the gathered weights, else
    ``model`` itself. Every process must call it (gathering is collective); the processes other
    than the main one get ``model`` back."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    if not isinstance(prepared, FullyShardedDataParallel):
        return model
    tensors = {}
    with FullyShardedDataParallel.summon_full_params(prepared, writeback=False, rank0_only=True):
        if is_main_process:
            named = chain(model.named_parameters(), model.named_buffers())
            tensors = {name.replace(_WRAPPER, ""): tensor.detach().cpu().clone() for name, tensor in named}
    if not is_main_process:
        return model
    whole = empty_model()
    saved = whole.state_dict().keys()
    whole.load_state_dict({name: tensors[name] for name in saved}, strict=True, assign=True)
    return whole
