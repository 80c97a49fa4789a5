"""The Gradio demo (``longclip_diffusers.demo.gradio_app``) at the Python level, on tiny random pipelines.

The browser test (``test_browser_demo.py``) drives the same app through Chromium; here the
pieces are checked one by one: the models it loads, the token meter, generation and its error
messages, the page and its queue, and the ``longclip-diffusers demo`` command.
"""

from __future__ import annotations

import importlib.util

import gradio as gr
import pytest
import torch

from longclip_diffusers import MissingDependencyError, save_text_encoder, stretch_text_encoder, tiny
from longclip_diffusers.cli import demo as demo_cli
from longclip_diffusers.cli.main import build_parser, main


@pytest.fixture(scope="module")
def app():
    return demo_cli.load_app()


@pytest.fixture(scope="module")
def studio(app):
    return app.load_studio("unused", "unused", tiny_random=True)


def _prompt(words: int) -> str:
    return " ".join(tiny.TINY_WORDS[i % len(tiny.TINY_WORDS)] for i in range(words))


def test_tiny_studio_shares_unet_and_vae_and_only_long_side_reads_248(studio):
    assert studio.random_weights
    assert studio.long.unet is studio.stock.unet and studio.long.vae is studio.stock.vae
    assert studio.stock.tokenizer.model_max_length == 77
    assert studio.long.tokenizer.model_max_length == 248
    assert studio.long.text_encoder.config.max_position_embeddings == 248
    assert studio.stock.text_encoder.config.max_position_embeddings == 77


def test_studio_loads_a_local_pipeline_and_long_clip_folder_once(app, tmp_path):
    pipe = tiny.tiny_sd_pipeline()
    pipe.save_pretrained(tmp_path / "sd")
    encoder = stretch_text_encoder(tiny.tiny_text_encoder(tokenizer=pipe.tokenizer, seed=2))
    save_text_encoder(encoder, tmp_path / "longclip", tokenizer=pipe.tokenizer)
    studio = app.load_studio(str(tmp_path / "sd"), str(tmp_path / "longclip"), device="cpu")
    assert not studio.random_weights
    assert studio.long.unet is studio.stock.unet and studio.long.vae is studio.stock.vae
    assert studio.long.tokenizer.model_max_length == 248 and studio.stock.tokenizer.model_max_length == 77
    assert torch.equal(
        studio.long.text_encoder.embeddings.position_embedding.weight,
        encoder.embeddings.position_embedding.weight,
    )
    assert (studio.width, studio.height, studio.steps, studio.guidance) == (64, 64, 30, 7.5)


def test_token_meter_marks_words_dropped_at_77_and_past_248(app, studio):
    prompt = _prompt(260)
    segments, summary = app.token_meter(prompt, studio.tokenizer)
    categories = [category for _, category in segments]
    # 75 prompt tokens fit 77 positions, 246 fit 248 (start and end token take two)
    assert categories[:75] == [None] * 75
    assert categories[75:246] == [app.DROPPED_AT_77] * 171
    assert categories[246:] == [app.PAST_248] * 14
    assert "".join(text for text, _ in segments) == prompt
    assert "**260 words, 260 tokens.**" in summary
    assert "drops 185 words" in summary and "14 words are past 248" in summary


def test_token_meter_of_short_prompt_marks_nothing(app, studio):
    segments, summary = app.token_meter("a red cat sits on a chair", studio.tokenizer)
    assert all(category is None for _, category in segments)
    assert "Both encoders read all of it" in summary
    assert app.token_meter("", studio.tokenizer) == ([], "**0 words, 0 tokens.** Both encoders read all of it.")


def test_generate_gives_both_images_same_seed_reproducibly_with_progress(app, studio):
    calls = []
    prompt = _prompt(150)
    stock, long, status = app.generate(
        studio, prompt, "blurry", 7, 2, 5.0, 64, 64, progress=lambda *a, **k: calls.append(a)
    )
    assert stock.size == long.size == (64, 64)
    assert [call[0] for call in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    again, long_again, _ = app.generate(studio, prompt, "blurry", 7, 2, 5.0, 64, 64)
    assert again.tobytes() == stock.tobytes() and long_again.tobytes() == long.tobytes()
    assert stock.tobytes() != long.tobytes()
    assert "Seed 7" in status


@pytest.mark.parametrize(
    "prompt, width, message",
    [
        ("   ", 64, "Type a prompt first"),
        ("x" * 3001, 64, "limited to 3000 characters"),
        ("a cat", 60, "multiples of 8"),
    ],
)
def test_generate_rejects_bad_input_with_a_message(app, studio, prompt, width, message):
    with pytest.raises(gr.Error, match=message):
        app.generate(studio, prompt, "", 0, 1, 5.0, width, 64)


def test_generate_turns_a_pipeline_failure_into_a_message(app, studio, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(studio.long.unet, "forward", fail)
    with pytest.raises(gr.Error) as info:
        app.generate(studio, "a cat", "", 0, 1, 5.0, 64, 64)
    assert info.value.message == "Generation failed: CUDA out of memory"


def test_page_has_meter_controls_side_by_side_images_and_bounded_queue(app, studio):
    page = app.build_demo(studio)
    ids = {block.elem_id for block in page.blocks.values()}
    assert {
        "prompt",
        "token-count",
        "token-meter",
        "generate",
        "stock-image",
        "long-image",
        "status",
        "random-weights",
    } <= ids
    assert page._queue.default_concurrency_limit == 1
    assert page._queue.max_size == app.MAX_QUEUE
    prompt_box = next(block for block in page.blocks.values() if block.elem_id == "prompt")
    assert prompt_box.max_length == app.MAX_PROMPT_CHARS


def test_demo_command_defaults_to_localhost_without_share():
    args = build_parser().parse_args(["demo", "--tiny-random"])
    assert (args.host, args.port, args.share, args.tiny_random) == ("127.0.0.1", 7860, False, "sd")
    assert build_parser().parse_args(["demo", "--tiny-random", "flux"]).tiny_random == "flux"


def test_demo_command_launches_the_app_with_its_options(monkeypatch, app):
    launched = []
    monkeypatch.setattr(app, "launch", launched.append)
    assert main(["demo", "--tiny-random", "--port", "9001", "--host", "0.0.0.0"]) == 0
    (args,) = launched
    assert (args.port, args.host, args.tiny_random, args.share) == (9001, "0.0.0.0", "sd", False)


def test_demo_command_without_gradio_names_the_extra_to_install(monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "gradio" else find_spec(name, *rest)
    )
    with pytest.raises(MissingDependencyError, match=r'pip install "longclip-diffusers\[demo\]"'):
        demo_cli.load_app()
    assert main(["demo", "--tiny-random"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == 'error: the demo needs gradio, which is not installed: pip install "longclip-diffusers[demo]"'


def test_long_side_reads_the_tail_of_the_prompt_the_stock_side_drops(studio):
    words = _prompt(150).split()
    changed = list(words)
    changed[120] = "dragon" if changed[120] != "dragon" else "castle"

    def embeds(pipe, prompt):
        return pipe.encode_prompt(" ".join(prompt), "cpu", 1, False)[0]

    assert torch.equal(embeds(studio.stock, words), embeds(studio.stock, changed))
    assert not torch.allclose(embeds(studio.long, words), embeds(studio.long, changed))


@pytest.mark.parametrize("kind", ["flux", "sd3"])
def test_tiny_flux_and_sd3_studios_share_the_transformer_and_draw_both_images(app, kind):
    studio = app.load_studio("unused", "unused", tiny_random=kind)
    assert studio.long.transformer is studio.stock.transformer and studio.long.vae is studio.stock.vae
    assert studio.stock.tokenizer_max_length == 77 and studio.long.tokenizer_max_length == 248
    stock, long, _ = app.generate(studio, _prompt(150), "", 3, 2, 3.5, 16, 16)
    assert stock.size == long.size == (16, 16)
    assert stock.tobytes() != long.tobytes()


def test_studio_reads_a_local_sd3_pipeline_with_its_own_defaults(app, tmp_path):
    tiny.tiny_sd3_pipeline().save_pretrained(tmp_path / "sd3")
    save_text_encoder(tiny.tiny_long_clip_encoder(with_projection=True), tmp_path / "longclip")
    studio = app.load_studio(str(tmp_path / "sd3"), str(tmp_path / "longclip"), device="cpu")
    assert type(studio.stock).__name__ == "StableDiffusion3Pipeline" and studio.long.tokenizer_max_length == 248
    assert (studio.width, studio.height, studio.steps, studio.guidance) == (32, 32, 30, 7.0)
