"""``longclip_diffusers.longclip``: the released Long-CLIP API (load, tokenize, encode_text,
encode_image, forward, logit_scale) over the converted transformers CLIPModel."""

from __future__ import annotations

import os
import textwrap

import huggingface_hub
import numpy as np
import pytest
import torch
from eval_fixtures import save_tiny_clip
from PIL import Image

from longclip_diffusers import TextTooLongError, UnsupportedOptionError, load_clip_model, longclip
from longclip_diffusers.constants import DEFAULT_TOKENIZER
from longclip_diffusers.io.image_preprocessing import ClipImageTransform
from longclip_diffusers.io.loading import CACHE_ENV
from longclip_diffusers.tiny import TINY_WORDS, tiny_clip_tokenizer, tiny_openai_state_dict

CLIP_VOCAB = 49408


def _words(count: int) -> str:
    return " ".join(TINY_WORDS[i % len(TINY_WORDS)] for i in range(count))


@pytest.fixture
def offline_hub_with_clip_tokenizer(tmp_path, monkeypatch):
    """CLIP-L's hub repo in an offline hub cache, holding a tiny tokenizer with CLIP's special ids
    (what ``longclip.tokenize`` uses for a checkpoint file, which carries no tokenizer)."""
    hub = tmp_path / "hub"
    snapshot = hub / f"models--{DEFAULT_TOKENIZER.replace('/', '--')}" / "snapshots" / ("0" * 40)
    tiny_clip_tokenizer(vocab_size=CLIP_VOCAB).save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    return hub


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny CLIPModel folder at 248 positions, with its own tokenizer."""
    return save_tiny_clip(tmp_path_factory.mktemp("longclip_api") / "tiny-longclip")


# The README of the official repository, with only the import line changed.
RELEASED_EXAMPLE = textwrap.dedent(
    """
    from longclip_diffusers import longclip
    import torch
    from PIL import Image

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, preprocess = longclip.load("./checkpoints/longclip-B.pt", device=device)

    text = longclip.tokenize(["A man is crossing the street with a red car parked nearby.", "A man is driving a car in an urban scene."]).to(device)
    image = preprocess(Image.open("./img/demo.png")).unsqueeze(0).to(device)

    with torch.no_grad():
        image_features = model.encode_image(image)
        text_features = model.encode_text(text)

        logits_per_image, logits_per_text = model(image, text)
        probs = logits_per_image.softmax(dim=-1).cpu().numpy()

    print("Label probs:", probs)
    """
)


def test_the_released_readme_example_runs_unchanged_apart_from_the_import_line(
    tmp_path, monkeypatch, offline_hub_with_clip_tokenizer, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "converted"))
    (tmp_path / "checkpoints").mkdir()
    torch.save(tiny_openai_state_dict(vocab_size=CLIP_VOCAB), tmp_path / "checkpoints" / "longclip-B.pt")
    (tmp_path / "img").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save("img/demo.png")

    namespace: dict = {}
    exec(compile(RELEASED_EXAMPLE, "released_example.py", "exec"), namespace)

    probs = namespace["probs"]
    assert probs.shape == (1, 2) and np.isclose(probs.sum(), 1.0, atol=1e-5)
    assert namespace["image_features"].shape == (1, 32) and namespace["text_features"].shape == (2, 32)
    image_features = namespace["image_features"] / namespace["image_features"].norm(dim=-1, keepdim=True)
    text_features = namespace["text_features"] / namespace["text_features"].norm(dim=-1, keepdim=True)
    expected = namespace["model"].logit_scale.exp() * image_features @ text_features.T
    torch.testing.assert_close(namespace["logits_per_image"], expected)
    torch.testing.assert_close(namespace["logits_per_text"], expected.T)
    assert "Label probs:" in capsys.readouterr().out


def test_features_equal_the_clip_models_own_and_zero_padding_changes_nothing(model_dir):
    model, preprocess = longclip.load(model_dir, device="cpu")
    reference = load_clip_model(model_dir)
    tokenizer = tiny_clip_tokenizer(248)
    texts = ["a red cat sits on a green chair", _words(120)]
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8))

    with torch.no_grad():
        text_features = model.encode_text(longclip.tokenize(texts))
        image_features = model.encode_image(preprocess(image).unsqueeze(0))
        # transformers' own padding (end tokens, with a mask) and transform
        tokens = tokenizer(texts, padding="max_length", max_length=248, return_tensors="pt")
        expected_text = reference.get_text_features(**tokens).pooler_output
        pixels = ClipImageTransform(size=32)(image).unsqueeze(0)
        expected_image = reference.get_image_features(pixel_values=pixels).pooler_output
    torch.testing.assert_close(text_features, expected_text)
    torch.testing.assert_close(image_features, expected_image)
    assert model.logit_scale is model.model.logit_scale


def test_forward_gives_the_clip_models_logits_per_image_and_per_text(model_dir):
    model, preprocess = longclip.load(model_dir, device="cpu")
    reference = load_clip_model(model_dir)
    images = torch.stack([preprocess(Image.new("RGB", (32, 32), colour)) for colour in ("red", "green", "blue")])
    text = longclip.tokenize(["a red cat", "a blue boat"])
    with torch.no_grad():
        logits_per_image, logits_per_text = model(images, text)
        expected = reference(input_ids=text, pixel_values=images)
    assert logits_per_image.shape == (3, 2) and logits_per_text.shape == (2, 3)
    torch.testing.assert_close(logits_per_image, expected.logits_per_image)
    torch.testing.assert_close(logits_per_text, logits_per_image.T)


def test_tokenize_pads_with_zeros_after_the_end_token_in_int32_rows_of_248(model_dir):
    longclip.load(model_dir, device="cpu")
    tokenizer = tiny_clip_tokenizer()
    tokens = longclip.tokenize("a red cat")
    assert tokens.dtype == torch.int32 and tokens.shape == (1, 248)
    ids = tokenizer("a red cat").input_ids
    assert tokens[0, : len(ids)].tolist() == ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert not tokens[0, len(ids) :].any()
    assert longclip.tokenize(["a", "red cat"], context_length=77).shape == (2, 77)


def test_tokenize_refuses_a_too_long_text_unless_asked_to_truncate(model_dir):
    longclip.load(model_dir, device="cpu")
    tokenizer = tiny_clip_tokenizer()
    exact, too_long = _words(246), _words(247)  # one token per word, plus start and end
    assert longclip.tokenize(exact)[0, -1] == tokenizer.eos_token_id
    with pytest.raises(TextTooLongError, match="249 tokens.*truncate=True") as error:
        longclip.tokenize(["a cat", too_long])
    assert isinstance(error.value, RuntimeError)

    cut = longclip.tokenize(too_long, truncate=True)[0].tolist()
    full = tokenizer(too_long).input_ids
    assert cut[:247] == full[:247] and cut[247] == tokenizer.eos_token_id


def test_tokenize_uses_the_tokenizer_passed_or_of_the_model_loaded_last(model_dir):
    other = tiny_clip_tokenizer(vocab_size=CLIP_VOCAB)
    assert longclip.tokenize("a cat", tokenizer=other)[0, 0] == 49406
    longclip.load(model_dir, device="cpu")
    assert longclip.tokenize("a cat")[0, 0] == tiny_clip_tokenizer().bos_token_id


def test_a_text_longer_than_the_model_reads_names_the_context_length(tmp_path):
    model, _ = longclip.load(save_tiny_clip(tmp_path / "clip77", positions=77), device="cpu")
    assert model.context_length == 77
    with pytest.raises(TextTooLongError, match="context_length=77"):
        model.encode_text(longclip.tokenize("a red cat"))
    assert model.encode_text(longclip.tokenize("a red cat", context_length=77)).shape == (1, 32)


def test_load_casts_to_the_dtype_asked_and_images_follow_it(model_dir):
    model, preprocess = longclip.load(model_dir, device="cpu", torch_dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    with torch.no_grad():
        features = model.encode_image(preprocess(Image.new("RGB", (32, 32), "red")).unsqueeze(0))
    assert features.dtype == torch.bfloat16


def test_jit_is_refused_with_the_fix(model_dir):
    with pytest.raises(UnsupportedOptionError, match="jit=False"):
        longclip.load(model_dir, device="cpu", jit=True)
