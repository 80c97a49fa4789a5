"""``longclip.tokenize``: the released function's token tensor, from the transformers CLIP tokenizer.

Long-CLIP keeps CLIP's BPE vocabulary and only lengthens the context to 248, so the tokenizer is
CLIP's (docs/longclip-api.md). The released tensor layout: start token, the text's tokens, end
token, then zeros up to ``context_length``; a text that does not fit is an error unless
``truncate``, which keeps the first ``context_length`` tokens and puts the end token last.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from ..constants import DEFAULT_TOKENIZER, LONG_LENGTH
from ..errors import TextTooLongError
from ..io.loading import load_tokenizer


@dataclass
class _TokenizerChoice:
    """Where the tokenizer of the model ``load`` returned last is found (the released
    ``tokenize`` takes no model) and, once needed, the tokenizer itself."""

    source: str | os.PathLike = DEFAULT_TOKENIZER
    fallback: str | os.PathLike = DEFAULT_TOKENIZER
    tokenizer: PreTrainedTokenizerBase | None = None


_current = _TokenizerChoice()


def tokenize(
    texts: str | list[str],
    context_length: int = LONG_LENGTH,
    truncate: bool = False,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> torch.Tensor:
    """Token ids ``[len(texts), context_length]`` (int32), padded with 0, as the released
    ``longclip.tokenize`` returns them.

    Args:
        texts: one text or a list of texts.
        context_length: the row length; 248, Long-CLIP's, by default.
        truncate: cut a text longer than ``context_length`` tokens (start and end included) to
            fit, ending it with the end token; without it such a text raises.
        tokenizer: the CLIP tokenizer to use; by default the one of the model
            :func:`~longclip_diffusers.longclip.load` loaded last, else CLIP-L's from the hub.

    Raises:
        TextTooLongError: a text does not fit and ``truncate`` is False (a ``RuntimeError``).
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    tokenizer = tokenizer or _current_tokenizer()
    # verbose=False: the released function warns about nothing; overlong texts are handled below
    rows = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    result = torch.zeros(len(rows), context_length, dtype=torch.int)
    for index, row in enumerate(rows):
        if len(row) > context_length:
            if not truncate:
                raise TextTooLongError(
                    f"text {index} ({texts[index][:40]!r}...) has {len(row)} tokens, more than the context "
                    f"length of {context_length}. Fix: shorten it or call tokenize(..., truncate=True)."
                )
            row = row[: context_length - 1] + [tokenizer.eos_token_id]
        result[index, : len(row)] = torch.tensor(row, dtype=torch.int)
    return result


def use_tokenizer_of(source: str | os.PathLike, fallback: str | os.PathLike | None = None) -> None:
    """Make :func:`tokenize` use the tokenizer that belongs to ``source`` (else ``fallback``, else
    CLIP-L's), loaded on first use: a model loaded from a file needs no tokenizer until one is used."""
    global _current
    _current = _TokenizerChoice(source, fallback or DEFAULT_TOKENIZER)


def _current_tokenizer() -> PreTrainedTokenizerBase:
    if _current.tokenizer is None:
        _current.tokenizer = load_tokenizer(_current.source, fallback=_current.fallback)
    return _current.tokenizer
