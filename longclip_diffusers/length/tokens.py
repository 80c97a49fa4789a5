"""Token report: how a prompt fares against a 77-token and a 248-token CLIP encoder.

A CLIP encoder of ``L`` positions reads ``L - 2`` prompt tokens (the start and end tokens take
two positions), so a 77-token encoder keeps 75 and Long-CLIP's 248 keeps 246
(docs/checkpoint-format.md). The report works on whitespace-separated words with character spans, so a
UI can highlight exactly what each encoder drops; a word cut in the middle counts as dropped.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from ..constants import LONG_LENGTH, STOCK_LENGTH

_SPECIAL_POSITIONS = 2  # start and end token


@dataclass(frozen=True)
class PromptWord:
    """One whitespace-separated word: ``prompt[start:end]`` and its prompt tokens
    ``first_token <= i < end_token`` (0 is the first token after the start token)."""

    text: str
    start: int
    end: int
    first_token: int
    end_token: int

    def fits(self, length: int) -> bool:
        """Whether an encoder of ``length`` positions reads every token of this word."""
        return self.end_token <= length - _SPECIAL_POSITIONS


@dataclass(frozen=True)
class TokenReport:
    """What encoders of :data:`STOCK_LENGTH` and ``max_length`` positions read of a prompt."""

    prompt: str
    words: tuple[PromptWord, ...]
    token_count: int
    max_length: int = LONG_LENGTH
    stock_length: int = STOCK_LENGTH

    def dropped_at(self, length: int) -> tuple[PromptWord, ...]:
        """Words (wholly or partly) past what an encoder of ``length`` positions reads."""
        return tuple(word for word in self.words if not word.fits(length))

    @property
    def dropped_by_stock(self) -> tuple[PromptWord, ...]:
        """Words a 77-token encoder drops."""
        return self.dropped_at(self.stock_length)

    @property
    def recovered(self) -> tuple[PromptWord, ...]:
        """Words a 77-token encoder drops and a ``max_length`` encoder keeps."""
        return tuple(w for w in self.dropped_by_stock if w.fits(self.max_length))

    @property
    def dropped(self) -> tuple[PromptWord, ...]:
        """Words past ``max_length``: dropped by the long encoder too."""
        return self.dropped_at(self.max_length)

    def summary(self) -> str:
        """A few human-readable lines for a terminal or a status bar."""
        lines = [
            f"{self.token_count} tokens "
            f"({self.stock_length - _SPECIAL_POSITIONS} fit a {self.stock_length}-token encoder, "
            f"{self.max_length - _SPECIAL_POSITIONS} fit {self.max_length})"
        ]
        if self.dropped_by_stock:
            lines.append(
                f"a {self.stock_length}-token encoder drops {len(self.dropped_by_stock)} words: "
                f"{_quote(self.dropped_by_stock)}"
            )
        if self.recovered:
            lines.append(f"{self.max_length} tokens keep {len(self.recovered)} of them")
        if self.dropped:
            lines.append(f"past {self.max_length} tokens, dropped: {len(self.dropped)} words: {_quote(self.dropped)}")
        return "\n".join(lines)


def tokenizer_at(tokenizer: PreTrainedTokenizerBase, length: int) -> PreTrainedTokenizerBase:
    """A copy of ``tokenizer`` that pads and truncates to ``length`` tokens; the original, which a
    stock pipeline may share, keeps its own length."""
    fitted = copy.deepcopy(tokenizer)
    fitted.model_max_length = length
    return fitted


def token_report(prompt: str, tokenizer: PreTrainedTokenizerBase, max_length: int = LONG_LENGTH) -> TokenReport:
    """Tokenize ``prompt`` with a fast CLIP ``tokenizer`` and map its tokens onto words."""
    # verbose=False: a prompt longer than the tokenizer's length is the point here, not a warning
    encoding = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = encoding["offset_mapping"]
    words = []
    token = 0
    for match in re.finditer(r"\S+", prompt):
        first = token
        while token < len(offsets) and offsets[token][0] < match.end():
            token += 1
        words.append(PromptWord(match.group(), match.start(), match.end(), first, token))
    return TokenReport(prompt, tuple(words), len(offsets), max_length)


def _quote(words: tuple[PromptWord, ...], limit: int = 40) -> str:
    shown = " ".join(word.text for word in words[:limit])
    return f"'{shown}'" + (f" (+{len(words) - limit} more)" if len(words) > limit else "")
