"""A TULIP encoder in diffusers pipelines through apply_long_clip, past 248 tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from longclip_diffusers import apply_long_clip, convert_tulip_checkpoint, ntk_scaled_base, set_context_length
from longclip_diffusers.compat import text_config
from longclip_diffusers.drop_in import encode_prompt as prompt_encoding
from longclip_diffusers.tiny import (
    TINY_WORDS,
    tiny_clip_tokenizer,
    tiny_sd_pipeline,
    tiny_sdxl_pipeline,
    tiny_tulip_state_dict,
    tiny_tulip_text_encoder,
)


def _words(count: int, offset: int = 0) -> list[str]:
    return [TINY_WORDS[(i + offset) % len(TINY_WORDS)] for i in range(count)]


def test_sdxl_with_tulip_reads_a_300_token_prompt_past_248(tmp_path):
    pipe = tiny_sdxl_pipeline()
    apply_long_clip(pipe, tiny_tulip_text_encoder(), max_length=300)
    assert pipe.tokenizer.model_max_length == pipe.tokenizer_2.model_max_length == 300
    assert text_config(pipe.text_encoder_2).max_position_embeddings == 300

    words = _words(290)
    changed = words[:260] + _words(30, offset=7)  # differs only after token 260
    assert len(pipe.tokenizer(" ".join(words)).input_ids) == 292  # one token per word + BOS/EOT
    embeds, _, pooled, _ = pipe.encode_prompt(" ".join(words), device="cpu", do_classifier_free_guidance=False)
    embeds_changed, _, pooled_changed, _ = pipe.encode_prompt(
        " ".join(changed), device="cpu", do_classifier_free_guidance=False
    )
    assert embeds.shape == (1, 300, 64)
    torch.testing.assert_close(embeds[:, :261], embeds_changed[:, :261])  # causal attention
    assert not torch.allclose(embeds[:, 261:292], embeds_changed[:, 261:292])
    assert not torch.allclose(pooled, pooled_changed)

    image = pipe(
        " ".join(words),
        num_inference_steps=2,
        height=64,
        width=64,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()


def test_ntk_scaling_after_a_plain_length_change_starts_from_the_trained_248():
    pipe = tiny_sd_pipeline()
    apply_long_clip(pipe, tiny_tulip_text_encoder(), max_length=300)
    encoder = pipe.text_encoder
    assert encoder.config.max_position_embeddings == 300
    set_context_length(encoder, 496, ntk_alpha=8.0)
    assert encoder.config.ntk_original_length == 248
    expected = ntk_scaled_base(10000.0, 8.0, 496, 248, encoder.config.head_dim)
    assert encoder.config.rope_base == pytest.approx(expected)


def test_sd15_with_tulip_defaults_to_248_tokens():
    pipe = tiny_sd_pipeline()
    tulip = tiny_tulip_text_encoder()
    apply_long_clip(pipe, tulip)
    assert pipe.text_encoder is tulip and pipe.tokenizer.model_max_length == 248
    long_prompt = " ".join(_words(240))
    tail_changed = " ".join(_words(200) + _words(40, offset=11))
    embeds, _ = pipe.encode_prompt(long_prompt, "cpu", 1, False)
    embeds_changed, _ = pipe.encode_prompt(tail_changed, "cpu", 1, False)
    assert embeds.shape == (1, 248, 32)
    assert not torch.allclose(embeds[:, 201:242], embeds_changed[:, 201:242])
    clip_skipped, _ = pipe.encode_prompt(long_prompt, "cpu", 1, False, clip_skip=1)
    assert not torch.allclose(clip_skipped, embeds)


def test_tulip_of_the_wrong_width_is_refused_and_the_pipeline_left_as_it_was():
    pipe = tiny_sd_pipeline()
    before = pipe.text_encoder
    tokenizer = tiny_clip_tokenizer()
    wide = convert_tulip_checkpoint(
        tiny_tulip_state_dict(width=64),
        kind="text",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with pytest.raises(Exception, match="64 wide"):
        apply_long_clip(pipe, wide)
    assert pipe.text_encoder is before and pipe.tokenizer.model_max_length == 77


def test_pipeline_saved_with_tulip_reloads_with_diffusers(tmp_path):
    from diffusers import StableDiffusionPipeline

    pipe = tiny_sd_pipeline()
    apply_long_clip(pipe, tiny_tulip_text_encoder())
    pipe.save_pretrained(tmp_path / "pipe")
    reloaded = StableDiffusionPipeline.from_pretrained(tmp_path / "pipe")
    assert type(reloaded.text_encoder) is type(pipe.text_encoder)
    assert reloaded.tokenizer.model_max_length == 248
    prompt = " ".join(_words(230))
    torch.testing.assert_close(
        reloaded.encode_prompt(prompt, "cpu", 1, False)[0], pipe.encode_prompt(prompt, "cpu", 1, False)[0]
    )


def test_a_failed_swap_leaves_the_callers_tulip_at_its_own_length(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    pipe = tiny_sdxl_pipeline()
    tulip = tiny_tulip_text_encoder()
    length = text_config(tulip).max_position_embeddings
    monkeypatch.setattr(prompt_encoding.LongClipPromptEncoder, "__init__", broken)
    with pytest.raises(RuntimeError, match="simulated failure"):
        apply_long_clip(pipe, tulip, max_length=300)
    assert text_config(tulip).max_position_embeddings == length != 300
    assert text_config(pipe.text_encoder).max_position_embeddings == 77
