"""The statistics of ``eval generation`` on hand-made inputs: sentence split, shuffled partners,
the sentence share, and the paired two-stage bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from longclip_diffusers.evaluation.statistics import (
    paired_bootstrap,
    sentence_share,
    shuffled_partners,
    split_sentences,
)


def test_sentences_end_at_end_marks_and_line_breaks_and_keep_their_punctuation():
    text = 'A red car. Is it fast? "Yes!" said the man.\nA dog sleeps under the table'
    assert split_sentences(text) == [
        "A red car.",
        "Is it fast?",
        '"Yes!" said the man.',
        "A dog sleeps under the table",
    ]


def test_a_full_stop_before_a_lowercase_word_or_inside_a_number_does_not_end_a_sentence():
    text = "Fruit, e.g. an apple, costs 2.50 dollars. The 3.5 m tall (yes.) Tower stands."
    assert split_sentences(text) == [
        "Fruit, e.g. an apple, costs 2.50 dollars.",
        "The 3.5 m tall (yes.)",
        "Tower stands.",
    ]


def test_text_without_an_end_mark_is_one_sentence_and_empty_pieces_are_dropped():
    assert split_sentences("  a cat on a mat  ") == ["a cat on a mat"]
    assert split_sentences("One. ... \n\n Two!") == ["One.", "Two!"]
    assert split_sentences(" ... ") == []


@pytest.mark.parametrize("count", [2, 3, 7, 50])
def test_every_prompt_gets_another_prompt_as_partner_deterministically(count):
    partner = shuffled_partners(count, seed=4)
    assert sorted(partner.tolist()) == list(range(count))  # a permutation
    assert all(partner[i] != i for i in range(count))
    assert partner.tolist() == shuffled_partners(count, seed=4).tolist()


def test_partners_are_shuffled_not_a_fixed_shift():
    assert len({tuple(shuffled_partners(6, seed).tolist()) for seed in range(20)}) > 5


def test_a_single_prompt_has_no_partner():
    with pytest.raises(ValueError, match="another prompt"):
        shuffled_partners(1)


def test_the_share_counts_sentences_matched_better_with_ties_as_half():
    own = np.array([0.30, 0.20, 0.50, 0.40])
    other = np.array([0.10, 0.20, 0.60, 0.35])
    assert sentence_share(own, other) == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    batched = sentence_share(np.stack([own, other]), np.stack([other, own]))
    assert batched.tolist() == pytest.approx([0.625, 0.375])


def test_the_bootstrap_of_one_prompt_and_two_seeds_spans_both_values():
    # the resampled mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4
    summary = paired_bootstrap({"a": np.array([[0.0, 1.0]])}, resamples=4000)
    assert summary["a"]["mean"] == 0.5
    assert summary["a"]["ci"] == [0.0, 1.0]
    narrow = paired_bootstrap({"a": np.array([[0.0, 1.0]])}, resamples=4000, confidence=0.4)
    assert narrow["a"]["ci"] == [0.5, 0.5]


def test_pairing_cancels_what_every_pipeline_shares():
    rng = np.random.default_rng(0)
    stock = rng.normal(0.25, 0.05, size=(30, 4))  # prompts differ a lot
    values = {"stock": stock, "long": stock + 0.01}  # the same images, 0.01 better each
    summary = paired_bootstrap(values, baseline="stock", resamples=500)
    assert summary["long"]["delta"]["ci"] == pytest.approx([0.01, 0.01])
    assert summary["long"]["delta"]["above_zero"] == 1.0
    low, high = summary["long"]["ci"]
    assert high - low > 0.02  # each mean alone is uncertain, the difference is not
    assert "delta" not in summary["stock"]


def test_unpaired_noise_widens_the_difference():
    rng = np.random.default_rng(1)
    stock = rng.normal(0.25, 0.05, size=(30, 4))
    shuffled = rng.permutation(stock.ravel()).reshape(stock.shape) + 0.01
    summary = paired_bootstrap({"stock": stock, "other": shuffled}, baseline="stock", resamples=500)
    low, high = summary["other"]["delta"]["ci"]
    assert low < 0.01 < high and high - low > 0.01


def test_repeating_a_prompts_seeds_adds_no_information():
    # prompts, not images, are the units: four identical seeds per prompt give the same
    # interval as one seed per prompt
    one_seed = np.array([[0.1], [0.3], [0.2], [0.6], [0.4]])
    four_seeds = np.repeat(one_seed, 4, axis=1)
    assert paired_bootstrap({"a": four_seeds})["a"]["ci"] == pytest.approx(
        paired_bootstrap({"a": one_seed})["a"]["ci"]
    )


def test_the_bootstrap_is_deterministic_in_its_seed_and_checks_its_inputs():
    values = {"a": np.arange(12.0).reshape(4, 3), "b": np.ones((4, 3))}
    assert paired_bootstrap(values, seed=3) == paired_bootstrap(values, seed=3)
    assert paired_bootstrap(values, seed=3) != paired_bootstrap(values, seed=4)
    with pytest.raises(ValueError, match="same shape"):
        paired_bootstrap({"a": np.ones((4, 3)), "b": np.ones((4, 2))})
    with pytest.raises(ValueError, match="baseline 'c'"):
        paired_bootstrap(values, baseline="c")
