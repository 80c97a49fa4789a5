"""token_report: counts, what 77 tokens drop, what 248 keep, what is past 248, word spans."""

from __future__ import annotations

import logging

from pipeline_helpers import words

from longclip_diffusers import token_report, tokenizer_at
from longclip_diffusers.tiny import tiny_clip_tokenizer


def test_counts_and_what_each_length_reads(tokenizer):
    prompt_words = words(100)
    report = token_report(" ".join(prompt_words), tokenizer)
    assert report.token_count == 100
    assert [w.text for w in report.dropped_by_stock] == prompt_words[75:]
    assert [w.text for w in report.recovered] == prompt_words[75:]
    assert report.dropped == ()


def test_words_past_248_are_reported_as_dropped(tokenizer):
    prompt_words = words(260)
    report = token_report(" ".join(prompt_words), tokenizer)
    assert [w.text for w in report.dropped] == prompt_words[246:]
    assert len(report.recovered) == 246 - 75
    assert "dropped: 14 words" in report.summary()


def test_spans_point_into_the_prompt_and_cover_punctuation(tokenizer):
    prompt = "A  red cat,   sits under-the tree!"
    report = token_report(prompt, tokenizer)
    assert [w.text for w in report.words] == ["A", "red", "cat,", "sits", "under-the", "tree!"]
    assert all(prompt[w.start : w.end] == w.text for w in report.words)
    assert report.words[2].end_token - report.words[2].first_token == 2  # "cat" + ","
    assert report.token_count == report.words[-1].end_token


def test_a_word_cut_by_the_limit_counts_as_dropped(tokenizer):
    filler = words(74)
    split_word = "qzxqzx"  # not in the tiny vocabulary: several tokens
    report = token_report(" ".join(filler + [split_word]), tokenizer)
    cut = report.words[-1]
    assert cut.first_token == 74 and cut.end_token > 75
    assert report.dropped_by_stock == (cut,)


def test_short_prompt_reports_nothing_dropped(tokenizer):
    report = token_report("a red cat", tokenizer)
    assert report.token_count == 3 and report.dropped_by_stock == () and report.dropped == ()
    assert report.summary() == "3 tokens (75 fit a 77-token encoder, 246 fit 248)"


def test_max_length_sets_the_long_limit(tokenizer):
    report = token_report(" ".join(words(120)), tokenizer, max_length=102)
    assert len(report.dropped) == 20


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_long_prompt_is_reported_without_the_tokenizer_warning():
    # transformers' loggers do not propagate to the root logger (so not to caplog): listen on theirs
    records, logger = _Records(), logging.getLogger("transformers")
    logger.addHandler(records)
    try:
        token_report(" ".join(words(300)), tiny_clip_tokenizer())
    finally:
        logger.removeHandler(records)
    assert not [m for m in records.messages if "longer than the specified maximum" in m]


def test_tokenizer_at_copies_the_tokenizer_at_the_new_length(tokenizer):
    long = tokenizer_at(tokenizer, 248)
    assert long is not tokenizer
    assert (long.model_max_length, tokenizer.model_max_length) == (248, 77)
