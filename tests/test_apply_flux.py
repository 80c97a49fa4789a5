"""apply_long_clip on Flux.1 pipelines: Long-CLIP-L in the CLIP ``text_encoder``, whose pooled
output is Flux's pooled conditioning; T5 (``text_encoder_2``), its tokenizer and
``max_sequence_length`` untouched; ``tokenizer_max_length`` at 248 (docs/sd3-flux.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FluxImg2ImgPipeline, FluxInpaintPipeline, FluxKontextPipeline, FluxPipeline
from pipeline_helpers import IMAGE, T5_TOKENS, flux_embeds, tail_prompts, words

from longclip_diffusers import apply_long_clip, long_clip_pair
from longclip_diffusers.tiny import (
    tiny_flux_pipeline,
    tiny_long_clip_encoder,
    tiny_tulip_text_encoder,
)


@pytest.fixture
def pipe():
    return tiny_flux_pipeline()


def _pooled_by_hand(pipe, prompt: str) -> torch.Tensor:
    ids = pipe.tokenizer(prompt, padding="max_length", max_length=248, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids).pooler_output


def _t5_by_hand(pipe, prompt: str) -> torch.Tensor:
    ids = pipe.tokenizer_2(
        prompt, padding="max_length", max_length=T5_TOKENS, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        return pipe.text_encoder_2(ids)[0]


def test_200_token_prompt_runs_end_to_end_with_the_pooled_vector_of_all_248_tokens(pipe, long_prompt):
    t5, t5_tokenizer = pipe.text_encoder_2, pipe.tokenizer_2
    encoder = tiny_long_clip_encoder()
    apply_long_clip(pipe, encoder)
    assert pipe.text_encoder is encoder
    assert pipe.tokenizer.model_max_length == pipe.tokenizer_max_length == 248
    assert pipe.text_encoder_2 is t5 and pipe.tokenizer_2 is t5_tokenizer
    embeds, pooled = flux_embeds(pipe, long_prompt)
    torch.testing.assert_close(pooled, _pooled_by_hand(pipe, long_prompt))
    torch.testing.assert_close(embeds, _t5_by_hand(pipe, long_prompt))
    image = pipe(long_prompt, **IMAGE).images[0]
    assert image.shape == (16, 16, 3) and np.isfinite(image).all()


def test_a_word_at_token_150_changes_the_pooled_vector_only_after_apply(pipe):
    first, second = tail_prompts(count=200, same=150)
    assert torch.equal(flux_embeds(pipe, first)[1], flux_embeds(pipe, second)[1])  # stock: cut at 77
    apply_long_clip(pipe, tiny_long_clip_encoder())
    assert not torch.allclose(flux_embeds(pipe, first)[1], flux_embeds(pipe, second)[1])


def test_t5_keeps_its_max_sequence_length_default_and_reads_what_it_is_given(pipe):
    apply_long_clip(pipe, tiny_long_clip_encoder())
    embeds, _, _ = pipe.encode_prompt("a red cat", device="cpu")  # diffusers' default: 512
    assert embeds.shape == (1, 512, 32)
    embeds, _ = flux_embeds(pipe, "a red cat", max_sequence_length=40)
    assert embeds.shape == (1, 40, 32)


def test_side_by_side_pipelines_share_transformer_vae_and_t5_and_the_stock_one_stays_at_77(pipe, long_prompt):
    before = flux_embeds(pipe, long_prompt)
    stock, long = long_clip_pair(pipe, tiny_long_clip_encoder())
    assert long.transformer is stock.transformer and long.vae is stock.vae
    assert long.text_encoder_2 is stock.text_encoder_2 and long.text_encoder is not stock.text_encoder
    assert stock.tokenizer.model_max_length == stock.tokenizer_max_length == 77
    for got, want in zip(flux_embeds(stock, long_prompt), before):
        assert torch.equal(got, want)
    assert not torch.allclose(flux_embeds(long, long_prompt)[1], before[1])


def test_model_cpu_offload_hooks_are_registered_on_the_new_encoder(pipe, long_prompt):
    pipe.enable_model_cpu_offload(device="cpu")
    hooks = len(pipe._all_hooks)
    encoder = tiny_long_clip_encoder()
    apply_long_clip(pipe, encoder)
    assert hasattr(encoder, "_hf_hook") and len(pipe._all_hooks) == hooks
    assert any(hook.model is encoder for hook in pipe._all_hooks)
    assert np.isfinite(pipe(long_prompt, **IMAGE).images[0]).all()


def test_flux_pipelines_of_other_tasks_are_told_apart_by_components_not_names(pipe, long_prompt):
    expected = flux_embeds(apply_long_clip(tiny_flux_pipeline(), tiny_long_clip_encoder()), long_prompt)
    variants = [cls(**pipe.components) for cls in (FluxImg2ImgPipeline, FluxInpaintPipeline, FluxKontextPipeline)]
    for variant in variants:
        apply_long_clip(variant, tiny_long_clip_encoder())
        assert variant.tokenizer_max_length == 248
        for got, want in zip(flux_embeds(variant, long_prompt), expected):
            torch.testing.assert_close(got, want)
    image = variants[0](prompt=long_prompt, image=torch.rand(1, 3, 16, 16), strength=1.0, **IMAGE).images[0]
    assert np.isfinite(image).all()


def test_a_pipeline_derived_from_a_patched_one_reads_248_tokens_and_takes_apply_without_a_source(pipe, long_prompt):
    apply_long_clip(pipe, tiny_long_clip_encoder())
    img2img = FluxImg2ImgPipeline.from_pipe(pipe)
    assert img2img.tokenizer_max_length == 248  # diffusers reads it from the 248-token tokenizer
    apply_long_clip(img2img)
    assert img2img.text_encoder is pipe.text_encoder
    for got, want in zip(flux_embeds(img2img, long_prompt), flux_embeds(pipe, long_prompt)):
        torch.testing.assert_close(got, want)


def test_saved_patched_pipeline_reloads_with_248_tokens(pipe, tmp_path, long_prompt):
    apply_long_clip(pipe, tiny_long_clip_encoder())
    expected = flux_embeds(pipe, long_prompt)
    pipe.save_pretrained(tmp_path / "long")
    reloaded = FluxPipeline.from_pretrained(tmp_path / "long")
    assert reloaded.tokenizer_max_length == 248
    for got, want in zip(flux_embeds(reloaded, long_prompt), expected):
        torch.testing.assert_close(got, want)


def test_words_past_248_are_named_in_a_warning_that_says_t5_still_reads_them(pipe):
    apply_long_clip(pipe, tiny_long_clip_encoder())
    prompt = " ".join(words(300))
    with pytest.warns(UserWarning, match="these 54 words are dropped") as caught:
        flux_embeds(pipe, prompt, prompt_2="a cat")
    message = str(caught[0].message)
    assert " ".join(words(300)[246:]) in message
    assert "T5 (text_encoder_2) still reads them" in message and "pooled vector" in message


def test_tulip_reads_300_tokens_in_the_pooled_vector(pipe):
    tulip = tiny_tulip_text_encoder()
    apply_long_clip(pipe, tulip, max_length=300)
    assert pipe.tokenizer.model_max_length == pipe.tokenizer_max_length == 300
    first, second = tail_prompts(count=290, same=260)
    assert not torch.allclose(flux_embeds(pipe, first)[1], flux_embeds(pipe, second)[1])
