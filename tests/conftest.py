"""Shared fixtures: tiny random tokenizers and models from ``longclip_diffusers.tiny``."""

from __future__ import annotations

import pytest
import torch

from longclip_diffusers import tiny


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Nothing in the suite may reach the hub, as on a machine without internet."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def tokenizer():
    return tiny.tiny_clip_tokenizer()


@pytest.fixture
def long_prompt() -> str:
    """About 200 words of the tiny vocabulary, each one token: well past 77 tokens."""
    words = list(tiny.TINY_WORDS)
    return " ".join(words[i % len(words)] for i in range(200))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
