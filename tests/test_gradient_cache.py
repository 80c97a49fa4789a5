"""Gradient caching (``--micro-batch``) gives the gradients of one pass over the whole batch.

The model is a tiny bigG-shaped CLIP with both towers trained, the loss is Long-CLIP's full
PCM loss (long captions, and short captions against the PCA of the image features over the
whole batch, 2 components, so the PCA is not the identity at 16 rows).
"""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator

from longclip_diffusers.tiny import tiny_bigg_clip_model, tiny_clip_tokenizer
from longclip_diffusers.training import ContrastiveFeatures, pcm_loss, prepare_longclip_model
from longclip_diffusers.training.gather import BatchShards
from longclip_diffusers.training.gradient_cache import contrastive_backward

ROWS = 16


@pytest.fixture(scope="module")
def batch():
    tokenizer = tiny_clip_tokenizer(model_max_length=248)
    generator = torch.Generator().manual_seed(0)
    words = ["red", "cat", "tree", "road", "blue", "dog", "tall", "near", "sky", "house"]
    captions = [
        " ".join(words[i] for i in torch.randint(len(words), (int(n),), generator=generator))
        for n in torch.randint(5, 60, (ROWS,), generator=generator)
    ]
    long_ids = tokenizer(captions, padding="max_length", max_length=248, return_tensors="pt").input_ids
    short_ids = tokenizer([c.split()[0] for c in captions], padding="max_length", max_length=248, return_tensors="pt")
    pixels = torch.randn(ROWS, 3, 32, 32, generator=generator)
    return pixels, long_ids, short_ids.input_ids, tokenizer.eos_token_id


def _gradients(batch, micro_batch: int | None, freeze_vision: bool = False, cached_images: bool = False):
    pixels, long_ids, short_ids, eos = batch
    model = prepare_longclip_model(tiny_bigg_clip_model(seed=1), keep=20, ratio=4.0, freeze_vision=freeze_vision)
    features = ContrastiveFeatures(model, eos)
    if cached_images:
        with torch.no_grad():
            pixels = model.get_image_features(pixel_values=pixels).pooler_output
    accelerator = Accelerator(cpu=True)

    def loss_of(image, long_text, short_text, logit_scale):
        return pcm_loss(image, long_text, short_text, logit_scale, pca_dim=2)

    shards = BatchShards((ROWS,), 0)
    loss = contrastive_backward(accelerator, features, (pixels, long_ids, short_ids), shards, loss_of, micro_batch)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss, grads


def _assert_same(expected, actual):
    (loss_a, grads_a), (loss_b, grads_b) = expected, actual
    assert loss_b.total.item() == pytest.approx(loss_a.total.item(), rel=1e-6)
    assert loss_b.short.item() == pytest.approx(loss_a.short.item(), rel=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for name, grad in grads_a.items():
        if name.endswith("k_proj.bias"):
            # softmax ignores a bias shared by all keys: its true gradient is 0, what is there is rounding
            assert grad.abs().max() < 1e-6 and grads_b[name].abs().max() < 1e-6
            continue
        # float32 rounding differs with the chunk shapes: compare whole tensors, not each entry
        assert (grads_b[name] - grad).norm() <= 1e-5 * grad.norm() + 1e-9, name


@pytest.fixture(scope="module")
def one_pass(batch):
    return _gradients(batch, None)


def test_micro_batch_4_of_16_gives_the_gradients_of_one_pass(batch, one_pass):
    loss, grads = one_pass
    assert any(name.startswith("vision_model.") for name in grads) and "logit_scale" in grads
    _assert_same(one_pass, _gradients(batch, 4))


def test_micro_batch_16_of_16_gives_the_gradients_of_one_pass(batch, one_pass):
    _assert_same(one_pass, _gradients(batch, 16))


def test_a_micro_batch_that_does_not_divide_the_batch_gives_the_same_gradients(batch, one_pass):
    _assert_same(one_pass, _gradients(batch, 5))


def test_micro_batching_with_cached_image_features_trains_the_text_side_alone(batch):
    expected = _gradients(batch, None, freeze_vision=True, cached_images=True)
    actual = _gradients(batch, 4, freeze_vision=True, cached_images=True)
    assert not any(name.startswith(("vision_model.", "visual_projection.")) for name in actual[1])
    _assert_same(expected, actual)


def test_independent_losses_per_chunk_would_give_other_gradients(batch, one_pass):
    """What gradient caching preserves is real: each chunk's own loss (its own contrastive
    denominators, its own PCA) averaged over the chunks is another loss, with other gradients."""
    pixels, long_ids, short_ids, eos = batch
    model = prepare_longclip_model(tiny_bigg_clip_model(seed=1), keep=20, ratio=4.0)
    features = ContrastiveFeatures(model, eos)
    for rows in (slice(0, 8), slice(8, 16)):
        out = features(pixels[rows], long_ids[rows], short_ids[rows])
        pcm_loss(out.image, out.long_text, out.short_text, out.logit_scale, pca_dim=2).total.backward()
    name = "text_model.encoder.layers.0.mlp.fc1.weight"
    per_chunk = dict(model.named_parameters())[name].grad
    assert not torch.allclose(per_chunk / 2, one_pass[1][name], atol=1e-5, rtol=1e-3)
