"""Pretrain the toy experiment's base: a small CLIP trained from scratch on SHORT captions only.

This stands in for OpenAI's CLIP, whose alt-text captions are short, so that its position table
is only well trained over the first ~20 of its 77 rows (the Long-CLIP paper's "effective length",
section 3.1). Here the short captions take at most 10 tokens of a 20-token context.
It is plain from-scratch contrastive training on a stream of fresh scenes, not the Long-CLIP
fine-tuning trainer; the forward pass and the loss are the training package's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..io.export import save_clip_model
from ..io.image_preprocessing import ClipImageTransform
from ..tiny import tiny_clip_model, tiny_clip_tokenizer
from ..training.features import ContrastiveFeatures
from ..training.losses import clip_contrastive_loss
from ..training.optimization import make_optimizer, make_scheduler
from .scenes import iter_scenes
from .schedule import Schedule

#: CLIP clamps its learnt temperature so logits never exceed 100 (CLIP paper, section 2.5).
MAX_LOGIT_SCALE = math.log(100.0)


@dataclass(frozen=True)
class PretrainConfig:
    """Architecture and schedule of the base. Every batch is new scenes (no epochs)."""

    context_length: int = 20
    width: int = 64
    layers: int = 3
    heads: int = 4
    image_size: int = 48
    patch_size: int = 8
    schedule: Schedule = Schedule(steps=800, batch_size=128, lr=1e-3, weight_decay=0.1, warmup_steps=80)
    scene_seed: int = 1


def build_base(config: PretrainConfig):
    """The untrained base model and its tokenizer (context ``config.context_length``)."""
    tokenizer = tiny_clip_tokenizer(model_max_length=config.context_length)
    model = tiny_clip_model(
        seed=config.schedule.seed,
        hidden_size=config.width,
        num_layers=config.layers,
        num_heads=config.heads,
        max_position_embeddings=config.context_length,
        image_size=config.image_size,
        patch_size=config.patch_size,
        projection_dim=config.width,
        tokenizer=tokenizer,
    )
    return model, tokenizer


def pretrain_base(out_dir: str | Path, config: PretrainConfig = PretrainConfig(), overwrite: bool = False) -> Path:
    """Train the base on short captions of scene stream ``config.scene_seed`` and save it as a
    transformers ``CLIPModel`` directory (tokenizer at ``context_length``). Returns ``out_dir``."""
    schedule = config.schedule
    torch.manual_seed(schedule.seed)
    model, tokenizer = build_base(config)
    features = ContrastiveFeatures(model, tokenizer.eos_token_id).train()
    transform = ClipImageTransform(size=config.image_size)
    # CLIP's pretraining optimiser settings (CLIP paper, appendix F: betas 0.9/0.98, eps 1e-6)
    optimizer = make_optimizer(model, schedule.lr, schedule.weight_decay, betas=(0.9, 0.98), eps=1e-6)
    scheduler = make_scheduler(optimizer, schedule.warmup_steps, schedule.steps)
    progress = tqdm(range(schedule.steps), desc="pretraining the base on short captions")
    for step in progress:
        scenes = list(
            iter_scenes(
                schedule.batch_size,
                seed=config.scene_seed,
                start=step * schedule.batch_size,
                image_size=config.image_size,
            )
        )
        input_ids = tokenizer(
            [scene.short_caption for scene in scenes],
            padding="longest",
            truncation=True,
            max_length=config.context_length,
            return_tensors="pt",
        ).input_ids
        out = features(torch.stack([transform(scene.image) for scene in scenes]), input_ids)
        loss = clip_contrastive_loss(out.image, out.long_text, out.logit_scale, label_smoothing=0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(max=MAX_LOGIT_SCALE)
        progress.set_postfix(loss=f"{loss.item():.3f}")
    save_clip_model(model.eval(), out_dir, tokenizer=tokenizer, overwrite=overwrite)
    return Path(out_dir)
