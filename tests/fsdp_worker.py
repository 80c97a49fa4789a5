"""Run under ``torchrun --nproc_per_node 2``: gradient caching on a model fully sharded with
PyTorch's FSDP (the ``FullyShardedDataParallel`` wrapper accelerate's FSDP config uses, one unit
per transformer layer, original parameters kept), on CPU processes over gloo, against one
unsharded process's one pass over the whole batch.

accelerate routes FSDP only to GPUs (on CPU it falls back to DDP), so this drives
:func:`~longclip_diffusers.training.gradient_cache.contrastive_backward` with a minimal stand-in
for the three accelerator calls it makes, mapped to FSDP's own API as accelerate maps them.
Prints one JSON line on rank 0: whether the model was sharded, and the largest relative
gradient difference over all parameters.
"""

from __future__ import annotations

import contextlib
import json
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy
from torch.distributed.fsdp.wrap import ModuleWrapPolicy
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

from longclip_diffusers.tiny import tiny_bigg_clip_model, tiny_clip_tokenizer
from longclip_diffusers.training import ContrastiveFeatures, pcm_loss, prepare_longclip_model
from longclip_diffusers.training.fsdp_export import full_model_for_export
from longclip_diffusers.training.gather import BatchShards
from longclip_diffusers.training.gradient_cache import contrastive_backward
from longclip_diffusers.training.model_setup import empty_like_prepared

ROWS, MICRO = 8, 4


class FsdpCalls:
    """``autocast``, ``backward`` and ``no_sync`` as accelerate implements them for FSDP."""

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()

    def no_sync(self, model):
        return model.no_sync()


def batch(eos: int):
    generator = torch.Generator().manual_seed(0)
    rows = 2 * ROWS
    ids = torch.randint(3, eos - 1, (rows, 40), generator=generator)
    ids[:, 0] = eos - 1
    ids[torch.arange(rows), torch.randint(8, 40, (rows,), generator=generator)] = eos
    short = ids.clone()
    short[:, 6] = eos
    return torch.randn(rows, 3, 32, 32, generator=generator), ids, short


def loss_of(shards):
    def loss(image, long_text, short_text, logit_scale):
        return pcm_loss(image, long_text, short_text, logit_scale, pca_dim=2, rows=shards.rows)

    return loss


def main() -> int:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    eos = tiny_clip_tokenizer().eos_token_id
    pixels, ids, short = batch(eos)

    reference = prepare_longclip_model(tiny_bigg_clip_model(seed=1), keep=20, ratio=4.0)
    expected = {}
    if rank == 0:
        shards = BatchShards((2 * ROWS,), 0)
        features = ContrastiveFeatures(reference, eos)
        contrastive_backward(FsdpCalls(), features, (pixels, ids, short), shards, loss_of(shards), None)
        expected = {name: p.grad for name, p in reference.named_parameters()}

    model = prepare_longclip_model(tiny_bigg_clip_model(seed=1), keep=20, ratio=4.0)
    features = FullyShardedDataParallel(
        ContrastiveFeatures(model, eos),
        device_id=torch.device("cpu"),
        sharding_strategy=ShardingStrategy.FULL_SHARD,
        auto_wrap_policy=ModuleWrapPolicy({CLIPEncoderLayer}),
        use_orig_params=True,
    )
    shards = BatchShards((ROWS, ROWS), rank)
    mine = slice(rank * ROWS, (rank + 1) * ROWS)
    inputs = (pixels[mine], ids[mine], short[mine])
    contrastive_backward(FsdpCalls(), features, inputs, shards, loss_of(shards), MICRO)
    # outside forward each process holds only its shard of the parameters
    sharded = sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in reference.parameters())
    worst = 0.0
    # each process's loss covers its own rows; FSDP averages the gradients like DDP
    with FullyShardedDataParallel.summon_full_params(features, with_grads=True):
        for wrapped_name, parameter in model.named_parameters():
            name = wrapped_name.replace("_fsdp_wrapped_module.", "")
            if rank == 0 and not name.endswith("k_proj.bias"):  # k_proj.bias: true gradient 0
                worst = max(worst, float((parameter.grad - expected[name]).norm() / expected[name].norm()))
    # what the trainer exports: the whole weights, gathered on the main process
    exported = full_model_for_export(features, model, rank == 0, lambda: empty_like_prepared(model, 20))
    whole = rank != 0 or all(
        torch.equal(tensor, reference.state_dict()[name]) for name, tensor in exported.state_dict().items()
    )
    if rank == 0:
        print(json.dumps({"sharded": bool(sharded), "worst": worst, "export_whole": whole}))
    # both processes leave together: gloo can abort a process whose peer tears down first
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
