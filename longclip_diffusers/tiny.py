"""Tiny random models, tokenizers and pipelines.

Nothing here downloads anything: the tests build every model from these functions, and the
demo's ``--tiny-random`` mode uses them so the UI can be tried on any machine. The sizes follow
diffusers' own fast tests. Weights are random, so outputs are noise by design.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Literal, overload

import torch
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode

from .length.stretching import stretch_text_encoder

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"

#: Words that get a single token each in the tiny vocabulary, so test prompts have a
#: predictable token count (one per word, plus punctuation).
TINY_WORDS = (
    "a an the and with of in on at to by under over near behind beside above below from "
    "red green blue yellow purple orange black white golden silver pink brown grey "
    "small large tiny huge tall short round square old young bright dark soft shiny "
    "cat dog bird horse fish tree house car boat road river mountain sky cloud sun moon "
    "star flower garden city street window door table chair lamp book cup hat coat "
    "circle triangle diamond "
    "man woman child girl boy robot dragon castle forest lake field bridge tower ship "
    "sits stands runs flies walks holds wears looks shines glows rests "
    "photo painting portrait landscape scene detailed light shadow morning evening night "
    "one two three four five left right top bottom middle far background foreground"
).split()


def tiny_clip_tokenizer(
    model_max_length: int = 77, pad_token: str = EOS_TOKEN, vocab_size: int | None = None
) -> CLIPTokenizer:
    """A CLIP BPE tokenizer over the byte alphabet plus :data:`TINY_WORDS` as whole tokens.

    As in OpenAI's vocabulary, the start and end tokens take the two largest ids. ``vocab_size``
    (e.g. CLIP's 49408) pads the vocabulary with tokens no text produces, so that those ids are
    CLIP's own (49406, 49407): what a released checkpoint file, which carries no tokenizer, is
    converted with.
    """
    alphabet = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for symbol in alphabet + [s + "</w>" for s in alphabet]:
        vocab.setdefault(symbol, len(vocab))
    merges = _train_word_merges()
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    for index in range(len(vocab), (vocab_size or 0) - 2):
        vocab[f"<|unused{index}|>"] = index
    vocab[BOS_TOKEN] = len(vocab)
    vocab[EOS_TOKEN] = len(vocab)
    tokenizer = CLIPTokenizer(
        vocab=vocab,
        # tokenizers' BPE takes (left, right) pairs; transformers annotates merges as strings
        merges=merges,  # type: ignore[arg-type]
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=pad_token,
    )
    tokenizer.model_max_length = model_max_length
    return tokenizer


def _train_word_merges() -> list[tuple[str, str]]:
    """BPE merges learnt on :data:`TINY_WORDS`, most frequent pair first, ties broken by the
    pair itself. A learnt table (unlike hand-made chains) is consistent with BPE's rank order,
    so each word comes out as one token; the tie rule makes it identical in every process."""
    words = [list(word[:-1]) + [word[-1] + "</w>"] for word in dict.fromkeys(TINY_WORDS)]
    merges: list[tuple[str, str]] = []
    while True:
        counts = Counter(pair for word in words for pair in zip(word, word[1:]))
        if not counts:
            return merges
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges.append(pair)
        words = [_merge_pair(word, pair) for word in words]


def _merge_pair(word: list[str], pair: tuple[str, str]) -> list[str]:
    merged: list[str] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            merged.append(word[i] + word[i + 1])
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return merged


def tiny_text_config(
    tokenizer: CLIPTokenizer | None = None,
    hidden_size: int = 32,
    num_layers: int = 5,
    num_heads: int = 4,
    max_position_embeddings: int = 77,
    projection_dim: int | None = None,
    hidden_act: str = "gelu",
) -> CLIPTextConfig:
    """A small ``CLIPTextConfig`` whose vocabulary and special ids match ``tokenizer``."""
    tokenizer = tokenizer or tiny_clip_tokenizer()
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        projection_dim=projection_dim or hidden_size,
        hidden_act=hidden_act,
        layer_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


@overload
def tiny_text_encoder(with_projection: Literal[False] = False, seed: int = 0, **config_kwargs) -> CLIPTextModel: ...


@overload
def tiny_text_encoder(
    with_projection: Literal[True], seed: int = 0, **config_kwargs
) -> CLIPTextModelWithProjection: ...


@overload
def tiny_text_encoder(
    with_projection: bool, seed: int = 0, **config_kwargs
) -> CLIPTextModel | CLIPTextModelWithProjection: ...


def tiny_text_encoder(
    with_projection: bool = False, seed: int = 0, **config_kwargs
) -> CLIPTextModel | CLIPTextModelWithProjection:
    """A random ``CLIPTextModel`` (or ``...WithProjection``) built from :func:`tiny_text_config`."""
    torch.manual_seed(seed)
    config = tiny_text_config(**config_kwargs)
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return cls(config).eval()


def tiny_long_clip_encoder(seed: int = 1, **config_kwargs) -> CLIPTextModel:
    """A tiny random "Long-CLIP" ``CLIPTextModel``: :func:`tiny_text_encoder` stretched to 248
    positions, 32 wide like the text encoders of the tiny pipelines."""
    return stretch_text_encoder(tiny_text_encoder(seed=seed, **config_kwargs))


def tiny_clip_model(
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    max_position_embeddings: int = 77,
    image_size: int = 32,
    patch_size: int = 8,
    projection_dim: int = 32,
    hidden_act: str = "quick_gelu",
    tokenizer: CLIPTokenizer | None = None,
) -> CLIPModel:
    """A random text + vision ``CLIPModel`` for training and evaluation tests."""
    torch.manual_seed(seed)
    text = tiny_text_config(
        tokenizer,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        projection_dim=projection_dim,
        hidden_act=hidden_act,
    )
    vision = CLIPVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=projection_dim,
        hidden_act=hidden_act,
        layer_norm_eps=1e-5,
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection_dim)
    return CLIPModel(config).eval()


#: Toy sizes shaped like SDXL's OpenCLIP ViT-bigG/14 (text 1280 wide in heads of 64, projection
#: as wide as the text tower, exact GELU; vision 1664 wide in heads of 104, not 64).
TINY_BIGG = {
    "text_width": 128,
    "text_heads": 2,
    "vision_width": 96,
    "vision_heads": 2,
    "layers": 2,
    "image_size": 32,
    "patch_size": 8,
}


def tiny_bigg_clip_model(
    seed: int = 0, tokenizer: CLIPTokenizer | None = None, max_position_embeddings: int = 77
) -> CLIPModel:
    """A random text + vision ``CLIPModel`` shaped like OpenCLIP ViT-bigG/14 at toy size
    (:data:`TINY_BIGG`): GELU, a projection as wide as the text tower, vision heads 48 wide."""
    torch.manual_seed(seed)
    width = TINY_BIGG["text_width"]
    text = tiny_text_config(
        tokenizer,
        hidden_size=width,
        num_layers=TINY_BIGG["layers"],
        num_heads=TINY_BIGG["text_heads"],
        max_position_embeddings=max_position_embeddings,
        projection_dim=width,
        hidden_act="gelu",
    )
    vision = CLIPVisionConfig(
        hidden_size=TINY_BIGG["vision_width"],
        intermediate_size=TINY_BIGG["vision_width"] * 4,
        num_hidden_layers=TINY_BIGG["layers"],
        num_attention_heads=TINY_BIGG["vision_heads"],
        image_size=TINY_BIGG["image_size"],
        patch_size=TINY_BIGG["patch_size"],
        projection_dim=width,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=width)
    return CLIPModel(config).eval()


def tiny_open_clip_bigg_checkpoint(
    seed: int = 0, vocab_size: int | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """Random weights of a :data:`TINY_BIGG`-shaped model in open_clip's layout (OpenAI's keys,
    one 77-row position table) and the ``open_clip_config.json`` open_clip publishes with it:
    text heads, vision ``head_width`` and no ``quick_gelu``, i.e. exact GELU."""
    state_dict = tiny_openai_state_dict(
        width=TINY_BIGG["text_width"],
        layers=TINY_BIGG["layers"],
        vision_width=TINY_BIGG["vision_width"],
        vision_layers=TINY_BIGG["layers"],
        patch=TINY_BIGG["patch_size"],
        image_size=TINY_BIGG["image_size"],
        embed_dim=TINY_BIGG["text_width"],
        context=77,
        vocab_size=vocab_size,
        two_position_tables=False,
        seed=seed,
    )
    config = {
        "model_cfg": {
            "embed_dim": TINY_BIGG["text_width"],
            "vision_cfg": {
                "image_size": TINY_BIGG["image_size"],
                "layers": TINY_BIGG["layers"],
                "width": TINY_BIGG["vision_width"],
                "head_width": TINY_BIGG["vision_width"] // TINY_BIGG["vision_heads"],
                "patch_size": TINY_BIGG["patch_size"],
            },
            "text_cfg": {
                "context_length": 77,
                "vocab_size": state_dict["token_embedding.weight"].shape[0],
                "width": TINY_BIGG["text_width"],
                "heads": TINY_BIGG["text_heads"],
                "layers": TINY_BIGG["layers"],
            },
        },
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
    }
    return state_dict, config


def tiny_sd_pipeline(seed: int = 0):
    """A random ``StableDiffusionPipeline`` at diffusers' fast-test size (32-wide text encoder)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    vae = _tiny_vae((4, 8), norm_num_groups=2)
    tokenizer = tiny_clip_tokenizer()
    text_encoder = tiny_text_encoder(seed=seed, tokenizer=tokenizer)
    return StableDiffusionPipeline(
        unet=unet,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


def tiny_sd_pipeline_and_long_clip(seed: int = 0):
    """A :func:`tiny_sd_pipeline` and a tiny stretched encoder for its ``text_encoder`` slot: what
    ``generate --tiny-random`` and ``demo --tiny-random`` run."""
    pipe = tiny_sd_pipeline(seed)
    return pipe, stretch_text_encoder(tiny_text_encoder(tokenizer=pipe.tokenizer, seed=seed + 1))


def tiny_sdxl_pipeline(seed: int = 0, bigg_shaped: bool = False):
    """A random ``StableDiffusionXLPipeline`` at diffusers' fast-test size: two 32-wide encoders
    (the second with projection) giving a 64-wide context and a 32-wide pooled vector.
    ``bigg_shaped`` makes ``text_encoder_2`` the text tower of :func:`tiny_bigg_clip_model`
    (:data:`TINY_BIGG`: 128 wide, heads of 64, GELU, 128-wide pooled vector), so a tiny
    Long-CLIP-G trained from that model fits the slot."""
    from diffusers import StableDiffusionXLPipeline

    torch.manual_seed(seed)
    width_2 = TINY_BIGG["text_width"] if bigg_shaped else 32
    unet = _tiny_sdxl_unet(cross_attention_dim=32 + width_2, time_ids=6, pooled_dim=width_2)
    tokenizer = tiny_clip_tokenizer()
    tokenizer_2 = tiny_clip_tokenizer(pad_token="!")
    shape_2 = (
        {"hidden_size": width_2, "num_heads": TINY_BIGG["text_heads"], "num_layers": TINY_BIGG["layers"]}
        if bigg_shaped
        else {}
    )
    return StableDiffusionXLPipeline(
        vae=_tiny_vae((32, 64), norm_num_groups=32, sample_size=128),
        text_encoder=tiny_text_encoder(seed=seed, tokenizer=tokenizer),
        text_encoder_2=tiny_text_encoder(True, seed=seed + 1, tokenizer=tokenizer_2, **shape_2),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=_tiny_euler(),
        image_encoder=None,
        feature_extractor=None,
    )


def tiny_sdxl_refiner_pipeline(seed: int = 0):
    """A random SDXL refiner (``StableDiffusionXLImg2ImgPipeline`` with only ``text_encoder_2``)."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    torch.manual_seed(seed)
    unet = _tiny_sdxl_unet(cross_attention_dim=32, time_ids=5)
    tokenizer_2 = tiny_clip_tokenizer(pad_token="!")
    return StableDiffusionXLImg2ImgPipeline(
        vae=_tiny_vae((32, 64), norm_num_groups=32, sample_size=128),
        text_encoder=None,
        text_encoder_2=tiny_text_encoder(True, seed=seed + 1, tokenizer=tokenizer_2),
        tokenizer=None,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=_tiny_euler(),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
        image_encoder=None,
        feature_extractor=None,
    )


def _tiny_vae(block_out_channels, norm_num_groups: int, sample_size: int = 32):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=list(block_out_channels),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=norm_num_groups,
        sample_size=sample_size,
    )


def _tiny_sdxl_unet(cross_attention_dim: int, time_ids: int, pooled_dim: int = 32):
    from diffusers import UNet2DConditionModel

    addition_time_embed_dim = 8
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=addition_time_embed_dim,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=time_ids * addition_time_embed_dim + pooled_dim,
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=1,
    )


def _tiny_euler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        steps_offset=1,
        beta_schedule="scaled_linear",
        timestep_spacing="leading",
    )


def tiny_openai_state_dict(
    width: int = 64,
    layers: int = 2,
    vision_width: int = 64,
    vision_layers: int = 2,
    patch: int = 8,
    image_size: int = 32,
    embed_dim: int = 32,
    context: int = 248,
    vocab_size: int | None = None,
    two_position_tables: bool = True,
    seed: int = 0,
    with_vision: bool = True,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Random weights in the OpenAI CLIP / Long-CLIP checkpoint layout (docs/checkpoint-format.md).

    ``context=248`` with ``two_position_tables`` is a Long-CLIP file, ``context=77`` with one table
    a plain OpenAI CLIP file. ``vocab_size`` defaults to :func:`tiny_clip_tokenizer`'s, whose EOS
    is the last id. The head count is not stored: widths of 64 give one head (width // 64).
    ``device="meta"`` gives real-size shapes for free (for config inference tests).
    """
    from .conversion.openai_keys import LOGIT_SCALE_KEY, TextTower, VisionTower

    text = TextTower(
        width=width,
        layers=layers,
        vocab_size=vocab_size or len(tiny_clip_tokenizer()),
        context=context,
        embed_dim=embed_dim,
        mlp_width=4 * width,
        two_position_tables=two_position_tables,
    )
    shapes = text.shapes()
    if with_vision:
        vision = VisionTower(
            width=vision_width,
            layers=vision_layers,
            patch=patch,
            image_size=image_size,
            embed_dim=embed_dim,
            mlp_width=4 * vision_width,
        )
        shapes.update(vision.shapes())
    generator = torch.Generator().manual_seed(seed)
    state_dict = {key: _random_weight(key, shape, generator, device) for key, shape in shapes.items()}
    if with_vision:
        state_dict[LOGIT_SCALE_KEY] = torch.tensor(math.log(1 / 0.07), device=device)
    return state_dict


def _random_weight(key: str, shape: tuple[int, ...], generator: torch.Generator, device) -> torch.Tensor:
    """LayerNorm gains near 1, small biases, matrices scaled by 1/sqrt(fan-in), so activations stay
    O(1) and a wrongly mapped key changes the outputs visibly."""
    if torch.device(device).type == "meta":
        return torch.empty(shape, device="meta")
    values = torch.randn(shape, generator=generator)
    if len(shape) >= 2:
        values = values / math.sqrt(math.prod(shape[1:]))
    elif ".ln_" in f".{key}" and key.endswith(".weight"):
        values = 1 + 0.1 * values
    else:
        values = 0.1 * values
    return values.to(device)


def tiny_tulip_state_dict(width: int = 64, layers: int = 2, embed_dim: int = 32, seed: int = 0, **kwargs):
    """Random weights in TULIP's open_clip text layout: :func:`tiny_openai_state_dict`'s text
    tower without its position table (docs/tulip.md). Other keyword arguments go to
    :func:`tiny_openai_state_dict` (``with_vision`` defaults to False here)."""
    kwargs.setdefault("with_vision", False)
    state_dict = tiny_openai_state_dict(
        width=width, layers=layers, embed_dim=embed_dim, seed=seed, two_position_tables=False, **kwargs
    )
    del state_dict["positional_embedding"]
    return state_dict


def tiny_tulip_text_encoder(seed: int = 3, tokenizer: CLIPTokenizer | None = None):
    """A tiny random TULIP ``TulipTextModel`` for the tiny pipelines' CLIP-L slot: 32 wide, 2 heads
    of 16 (the width is not a multiple of 64), special ids of ``tokenizer``."""
    from .conversion.tulip_checkpoint import convert_tulip_checkpoint

    tokenizer = tokenizer or tiny_clip_tokenizer()
    return convert_tulip_checkpoint(
        tiny_tulip_state_dict(width=32, seed=seed, vocab_size=len(tokenizer)),
        kind="text",
        num_heads=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def write_tiny_caption_set(
    folder: str | os.PathLike,
    count: int = 16,
    seed: int = 0,
    image_size: int = 40,
    long_words: int = 90,
) -> Path:
    """Write ``count`` PNG images (two random colour blocks each) and ``captions.jsonl`` (``image``
    relative to ``folder``, a long ``caption`` of about ``long_words`` tiny-vocabulary tokens whose
    first sentence is the short one) into ``folder``; returns the caption file. For training
    tests and demos: deterministic in ``seed``, nothing downloaded."""
    import numpy as np
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(count):
        pixels = np.empty((image_size, image_size, 3), dtype=np.uint8)
        pixels[: image_size // 2] = rng.integers(0, 256, 3)
        pixels[image_size // 2 :] = rng.integers(0, 256, 3)
        name = f"image_{index:04d}.png"
        Image.fromarray(pixels).save(folder / name)
        words = rng.choice(TINY_WORDS, size=long_words).tolist()
        caption = " ".join(words[:6]) + ". " + " ".join(words[6:])
        lines.append(json.dumps({"image": name, "caption": caption}))
    captions = folder / "captions.jsonl"
    captions.write_text("\n".join(lines) + "\n")
    return captions
