"""Prompts and read-outs shared by the pipeline tests (tiny vocabulary: one token per word)."""

from __future__ import annotations

from longclip_diffusers.io.export import save_text_encoder
from longclip_diffusers.tiny import (
    TINY_WORDS,
    tiny_clip_tokenizer,
    tiny_flux_pipeline,
    tiny_long_clip_encoder,
    tiny_sd3_pipeline,
    tiny_sd_pipeline,
    tiny_sdxl_pipeline,
)

#: T5 tokens the Flux and SD3 helpers ask for: the tests look at the CLIP side, and T5 at its
#: default length (512 / 256) only costs time.
T5_TOKENS = 16
#: A quick image from a tiny Flux or SD3 pipeline.
IMAGE = {"num_inference_steps": 2, "height": 16, "width": 16, "max_sequence_length": T5_TOKENS, "output_type": "np"}


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


def flux_embeds(pipe, prompt, **options):
    """``(prompt_embeds, pooled_prompt_embeds)`` of a Flux pipeline (T5 at :data:`T5_TOKENS`)."""
    options.setdefault("max_sequence_length", T5_TOKENS)
    embeds, pooled, _ = pipe.encode_prompt(prompt, device="cpu", **options)
    return embeds, pooled


def sd3_embeds(pipe, prompt, **options):
    """``(prompt_embeds, pooled_prompt_embeds)`` of an SD3 pipeline, no guidance (T5 at
    :data:`T5_TOKENS`)."""
    options.setdefault("max_sequence_length", T5_TOKENS)
    embeds, _, pooled, _ = pipe.encode_prompt(
        prompt, None, None, device="cpu", do_classifier_free_guidance=False, **options
    )
    return embeds, pooled


_BUILDERS = {"sd": tiny_sd_pipeline, "sdxl": tiny_sdxl_pipeline, "flux": tiny_flux_pipeline, "sd3": tiny_sd3_pipeline}


def write_tiny_model_dirs(root, kinds=("sd", "sdxl")):
    """``root/<kind>`` for each of ``kinds`` (tiny pipelines, ``save_pretrained``), ``root/long-clip``
    (a tiny Long-CLIP text encoder with its tokenizer) and, with ``"sd3"``, ``root/long-clip-projection``
    (the same with its text projection, as the released checkpoint has), as users keep models on disk."""
    for kind in kinds:
        _BUILDERS[kind]().save_pretrained(root / kind)
    save_text_encoder(tiny_long_clip_encoder(), root / "long-clip", tokenizer=tiny_clip_tokenizer())
    if "sd3" in kinds:
        save_text_encoder(
            tiny_long_clip_encoder(with_projection=True),
            root / "long-clip-projection",
            tokenizer=tiny_clip_tokenizer(),
        )
    return root
