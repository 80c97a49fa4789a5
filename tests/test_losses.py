"""The Long-CLIP loss as pure functions: PCA reconstruction, contrastive loss, PCM loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from longclip_diffusers.tiny import tiny_clip_model, tiny_clip_tokenizer
from longclip_diffusers.training import (
    ContrastiveFeatures,
    clip_contrastive_loss,
    contrastive_logits,
    grouped_pca_reconstruct,
    pca_reconstruct,
    pcm_loss,
)


def _features(rows: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(rows, width, generator=generator, dtype=torch.float64), dim=-1)


def _eigen_reconstruction(x: torch.Tensor, dim: int) -> torch.Tensor:
    mean = x.mean(0, keepdim=True)
    centred = x - mean
    _, vectors = torch.linalg.eigh(centred.T @ centred)
    top = vectors[:, -dim:]  # eigh sorts eigenvalues ascending
    return centred @ top @ top.T + mean


def test_pca_reconstruction_equals_eigen_decomposition_reconstruction():
    x = _features(12, 8)
    torch.testing.assert_close(pca_reconstruct(x, 3), _eigen_reconstruction(x, 3))


def test_pca_is_the_identity_with_at_most_dim_plus_one_rows():
    x = _features(5, 8)
    assert pca_reconstruct(x, 4) is x
    # the shortcut is exact: a real SVD reconstruction of rank-4 centred data gives x back
    torch.testing.assert_close(_eigen_reconstruction(x, 4), x)


def test_pca_is_the_identity_when_features_are_no_wider_than_dim():
    x = _features(40, 8)
    assert pca_reconstruct(x, 8) is x


def test_pca_reconstruction_changes_features_and_passes_gradients():
    x = _features(20, 16).float().requires_grad_(True)
    coarse = pca_reconstruct(x, 2)
    assert not torch.allclose(coarse, x, atol=1e-3)
    coarse.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_grouped_pca_runs_each_group_on_its_own():
    x = _features(14, 8)
    grouped = grouped_pca_reconstruct(x, 2, group_sizes=[6, 8])
    torch.testing.assert_close(grouped, torch.cat([pca_reconstruct(x[:6], 2), pca_reconstruct(x[6:], 2)]))
    torch.testing.assert_close(grouped_pca_reconstruct(x, 2), pca_reconstruct(x, 2))
    with pytest.raises(ValueError, match="do not add up"):
        grouped_pca_reconstruct(x, 2, group_sizes=[6, 6])


def _smoothed_cross_entropy(logits: torch.Tensor, smoothing: float) -> float:
    total = 0.0
    n = len(logits)
    for i, row in enumerate(logits.tolist()):
        log_norm = math.log(sum(math.exp(v) for v in row))
        log_probs = [v - log_norm for v in row]
        total += (1 - smoothing) * -log_probs[i] + smoothing * -sum(log_probs) / len(row)
    return total / n


def test_contrastive_loss_matches_a_hand_computation():
    image = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    text = torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
    scale = torch.tensor(math.log(10.0))
    logits = 10.0 * image @ text.T
    expected = (_smoothed_cross_entropy(logits, 0.1) + _smoothed_cross_entropy(logits.T, 0.1)) / 2
    assert clip_contrastive_loss(image, text, scale, label_smoothing=0.1).item() == pytest.approx(expected, rel=1e-6)


def test_contrastive_loss_over_row_slices_averages_to_the_whole_batch_loss():
    image, text = _features(8, 4, seed=1), _features(8, 4, seed=2)
    scale = torch.tensor(math.log(100.0), dtype=torch.float64)
    whole = clip_contrastive_loss(image, text, scale)
    halves = [clip_contrastive_loss(image, text, scale, rows=slice(s, s + 4)) for s in (0, 4)]
    torch.testing.assert_close(sum(halves) / 2, whole)


def test_contrastive_loss_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="one caption per image"):
        clip_contrastive_loss(_features(4, 4), _features(3, 4), torch.tensor(0.0))


def test_pcm_loss_adds_the_weighted_short_loss_on_pca_image_features():
    image, long, short = _features(10, 6, 1), _features(10, 6, 2), _features(10, 6, 3)
    scale = torch.tensor(math.log(100.0), dtype=torch.float64)
    loss = pcm_loss(image, long, short, scale, pca_dim=2, short_weight=0.5)
    expected_long = clip_contrastive_loss(image, long, scale)
    expected_short = clip_contrastive_loss(pca_reconstruct(image, 2), short, scale)
    torch.testing.assert_close(loss.long, expected_long)
    torch.testing.assert_close(loss.short, expected_short)
    torch.testing.assert_close(loss.total, expected_long + 0.5 * expected_short)
    assert not torch.allclose(expected_short, clip_contrastive_loss(image, short, scale))


def test_pcm_loss_with_zero_short_weight_is_the_long_loss_only():
    image, long, short = _features(6, 4, 1), _features(6, 4, 2), _features(6, 4, 3)
    scale = torch.tensor(0.0, dtype=torch.float64)
    loss = pcm_loss(image, long, short, scale, short_weight=0.0)
    assert loss.short is None
    torch.testing.assert_close(loss.total, clip_contrastive_loss(image, long, scale))


def test_local_pca_scope_differs_from_global_when_groups_exceed_the_pca_size():
    image, long, short = _features(12, 6, 1), _features(12, 6, 2), _features(12, 6, 3)
    scale = torch.tensor(math.log(100.0), dtype=torch.float64)
    global_scope = pcm_loss(image, long, short, scale, pca_dim=2)
    local_scope = pcm_loss(image, long, short, scale, pca_dim=2, pca_group_sizes=[6, 6])
    assert not torch.allclose(global_scope.short, local_scope.short)


def test_pcm_loss_without_pca_scores_short_captions_against_the_image_features():
    image, long, short = _features(40, 6, 1), _features(40, 6, 2), _features(40, 6, 3)
    scale = torch.tensor(math.log(100.0), dtype=torch.float64)
    loss = pcm_loss(image, long, short, scale, pca_dim=None, short_weight=0.5)
    torch.testing.assert_close(loss.short, clip_contrastive_loss(image, short, scale))
    torch.testing.assert_close(loss.total, clip_contrastive_loss(image, long, scale) + 0.5 * loss.short)
    assert not torch.allclose(loss.short, pcm_loss(image, long, short, scale, pca_dim=2).short)


def test_features_logits_and_pca_are_float32_under_cpu_bfloat16_autocast():
    tokenizer = tiny_clip_tokenizer()
    ids = tokenizer(
        ["a red cat on a road", "two dogs", "a tree", "blue sky"] * 10,
        padding="max_length",
        max_length=16,
        return_tensors="pt",
    ).input_ids
    model = tiny_clip_model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ContrastiveFeatures(model, tokenizer.eos_token_id)(torch.randn(40, 3, 32, 32), ids, ids[:, :8])
        logits = contrastive_logits(out.image, out.long_text, out.logit_scale)
        coarse = pca_reconstruct(out.image, 2)
        towers = model.get_text_features(input_ids=ids).pooler_output
    assert towers.dtype == torch.bfloat16, "autocast did not run the towers in bfloat16: the test proves nothing"
    assert (out.image.dtype, out.long_text.dtype, out.short_text.dtype) == (torch.float32,) * 3
    assert logits.dtype == torch.float32 and coarse.dtype == torch.float32
    torch.testing.assert_close(logits, out.logit_scale.exp() * out.image @ out.long_text.T)
    # even bfloat16 features give float32 logits: the loss never runs its softmax in bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (
            contrastive_logits(out.image.bfloat16(), out.long_text.bfloat16(), out.logit_scale).dtype == torch.float32
        )
