"""Text features at the batch's longest real length equal the padded-248 features."""

from __future__ import annotations

import torch

from longclip_diffusers import stretch_text_encoder
from longclip_diffusers.tiny import tiny_clip_model, tiny_clip_tokenizer
from longclip_diffusers.training import ContrastiveFeatures, encode_text, trim_to_longest
from longclip_diffusers.training.trimmed_text import real_lengths


def test_real_lengths_count_up_to_the_first_eot():
    ids = torch.tensor([[5, 1, 2, 9, 9, 9], [5, 1, 9, 9, 9, 9], [5, 1, 2, 3, 4, 6]])
    assert real_lengths(ids, eos_token_id=9).tolist() == [4, 3, 6]
    assert trim_to_longest(ids[:2], eos_token_id=9).shape == (2, 4)


def test_trimmed_text_pass_equals_the_padded_248_pass(long_prompt):
    tokenizer = tiny_clip_tokenizer(model_max_length=248)
    model = stretch_text_encoder(tiny_clip_model()).eval()
    prompts = ["a red cat", " ".join(long_prompt.split()[:120]), "two dogs near a tree"]
    ids = tokenizer(prompts, padding="max_length", max_length=248, truncation=True, return_tensors="pt").input_ids
    trimmed = trim_to_longest(ids, tokenizer.eos_token_id)
    assert trimmed.shape[1] < 248 // 2
    with torch.no_grad():
        padded = model.get_text_features(input_ids=ids).pooler_output
        fast = encode_text(model, ids, tokenizer.eos_token_id)
    torch.testing.assert_close(fast, padded, atol=1e-5, rtol=1e-5)


def test_contrastive_features_are_unit_length_and_skip_the_short_pass_when_not_asked():
    tokenizer = tiny_clip_tokenizer()
    features = ContrastiveFeatures(tiny_clip_model(), tokenizer.eos_token_id)
    ids = tokenizer(["a cat", "a dog on a road"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = features(pixels, ids, ids[:, :10])
        long_only = features(pixels, ids)
    for tensor in (out.image, out.long_text, out.short_text):
        torch.testing.assert_close(tensor.norm(dim=-1), torch.ones(2))
    assert long_only.short_text is None
    assert out.logit_scale is features.clip.logit_scale
