"""Prompts and read-outs shared by the pipeline tests (tiny vocabulary: one token per word)."""

from __future__ import annotations

from longclip_diffusers.io.export import save_text_encoder
from longclip_diffusers.tiny import (
    TINY_WORDS,
    tiny_clip_tokenizer,
    tiny_long_clip_encoder,
    tiny_sd_pipeline,
    tiny_sdxl_pipeline,
)


def words(count: int, offset: int = 0) -> list[str]:
    return [TINY_WORDS[(i + offset) % len(TINY_WORDS)] for i in range(count)]


def tail_prompts(count: int = 200, same: int = 100) -> tuple[str, str]:
    """Two prompts of ``count`` tokens that agree on the first ``same`` and differ after."""
    head = words(same)
    return " ".join(head + words(count - same, offset=3)), " ".join(head + words(count - same, offset=17))


def sd_embeds(pipe, prompt, **options):
    """``prompt_embeds`` of an SD pipeline, no guidance."""
    embeds, _ = pipe.encode_prompt(prompt, "cpu", 1, False, **options)
    return embeds


def sdxl_embeds(pipe, prompt, **options):
    """``(prompt_embeds, pooled_prompt_embeds)`` of an SDXL pipeline, no guidance."""
    embeds, _, pooled, _ = pipe.encode_prompt(prompt, device="cpu", do_classifier_free_guidance=False, **options)
    return embeds, pooled


def write_tiny_model_dirs(root):
    """``root/sd`` and ``root/sdxl`` (tiny pipelines, ``save_pretrained``) and ``root/long-clip``
    (a tiny Long-CLIP text encoder with its tokenizer), as users keep models on disk."""
    tiny_sd_pipeline().save_pretrained(root / "sd")
    tiny_sdxl_pipeline().save_pretrained(root / "sdxl")
    save_text_encoder(tiny_long_clip_encoder(), root / "long-clip", tokenizer=tiny_clip_tokenizer())
    return root
