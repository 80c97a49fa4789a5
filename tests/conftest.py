"""Shared fixtures: tiny random tokenizers and models from ``longclip_diffusers.tiny``."""

from __future__ import annotations

import os

# huggingface_hub reads these once, at import: set them before anything imports it, so no test
# can wait on (or reach) the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from longclip_diffusers import tiny  # noqa: E402


@pytest.fixture
def tokenizer():
    return tiny.tiny_clip_tokenizer()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A tiny random CLIPModel folder with its tokenizer: a training base, or a model to evaluate."""
    from longclip_diffusers.io.export import save_clip_model

    folder = tmp_path_factory.mktemp("base") / "clip"
    save_clip_model(tiny.tiny_clip_model(), folder, tokenizer=tiny.tiny_clip_tokenizer())
    return folder


@pytest.fixture
def long_prompt() -> str:
    """About 200 words of the tiny vocabulary, each one token: well past 77 tokens."""
    words = list(tiny.TINY_WORDS)
    return " ".join(words[i % len(words)] for i in range(200))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
