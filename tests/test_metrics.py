"""Recall@k and top-k accuracy on synthetic similarities whose answers are known by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from longclip_diffusers import feature_recall_at_k, recall_at_k, topk_accuracy


def test_identity_similarity_gives_perfect_recall_both_ways():
    result = recall_at_k(torch.eye(6), torch.arange(6))
    for direction in ("image_to_text", "text_to_image"):
        assert result[direction] == {"R@1": 1.0, "R@5": 1.0, "R@10": 1.0}


def test_shifted_permutation_has_its_known_recall():
    # Image i's best text is caption (i + 1) % 4, second best its own: R@1 = 0, R@2 = 1.
    similarity = torch.eye(4).roll(1, dims=1) + 0.5 * torch.eye(4)
    result = recall_at_k(similarity, torch.arange(4), ks=(1, 2, 3))
    assert result["image_to_text"] == {"R@1": 0.0, "R@2": 1.0, "R@3": 1.0}
    assert result["text_to_image"] == {"R@1": 0.0, "R@2": 1.0, "R@3": 1.0}


def test_half_the_pairs_swapped_gives_half_recall_at_1():
    permutation = torch.tensor([1, 0, 2, 3])
    similarity = torch.eye(4)[:, permutation]
    result = recall_at_k(similarity, torch.arange(4), ks=(1,))
    assert result["image_to_text"]["R@1"] == 0.5
    assert result["text_to_image"]["R@1"] == 0.5


def test_image_is_a_hit_when_any_of_its_captions_ranks_first():
    # 2 images x 3 captions each (captions 0-2 -> image 0, 3-5 -> image 1).
    text_to_image = torch.tensor([0, 0, 0, 1, 1, 1])
    similarity = torch.tensor(
        [
            [0.1, 0.9, 0.2, 0.3, 0.0, 0.0],  # image 0: its caption 1 is first
            [0.0, 0.8, 0.0, 0.1, 0.7, 0.2],  # image 1: best own caption (0.7) ranks second
        ]
    )
    result = recall_at_k(similarity, text_to_image, ks=(1, 2))
    assert result["image_to_text"] == {"R@1": 0.5, "R@2": 1.0}
    # text -> image: captions 0, 1 (own image 0 scores 0.1 > 0.0 and 0.9 > 0.8) and 4, 5 hit;
    # caption 2 (0.2 > 0.0) hits; caption 3 (0.3 vs own 0.1) misses: 5 of 6.
    assert result["text_to_image"]["R@1"] == pytest.approx(5 / 6)
    assert result["text_to_image"]["R@2"] == 1.0


def test_ties_count_against_the_model():
    result = recall_at_k(torch.zeros(3, 3), torch.arange(3), ks=(1, 3))
    assert result["image_to_text"] == {"R@1": 0.0, "R@3": 1.0}


def test_chunked_feature_recall_equals_the_full_matrix_recall():
    torch.manual_seed(3)
    images = F.normalize(torch.randn(23, 16), dim=-1)
    owners = torch.arange(23).repeat_interleave(3)[:67]
    texts = F.normalize(images[owners] + 0.9 * torch.randn(67, 16), dim=-1)
    full = recall_at_k(images @ texts.T, owners)
    assert feature_recall_at_k(images, texts, owners, chunk_size=5) == full
    assert 0.0 < full["image_to_text"]["R@1"] < 1.0


@pytest.mark.parametrize(
    "owners, message",
    [
        (torch.tensor([0, 1]), "one image index per caption"),
        (torch.tensor([0, 1, 5]), "outside"),
        (torch.tensor([0, 0, 1]), "no caption"),
    ],
)
def test_inconsistent_caption_assignment_is_refused(owners, message):
    with pytest.raises(ValueError, match=message):
        recall_at_k(torch.rand(3, 3), owners)


def test_topk_accuracy_counts_the_own_class_rank():
    classes = torch.eye(3)
    images = torch.tensor([[1.0, 0.2, 0.0], [0.9, 0.5, 0.0], [0.0, 0.6, 0.5]])
    labels = torch.tensor([0, 1, 2])  # ranks 0, 1, 1
    result = topk_accuracy(images, classes, labels, ks=(1, 2))
    assert result == {"top1": pytest.approx(1 / 3), "top2": 1.0}
