"""Long-prompt studio: one prompt, the stock-CLIP image and the Long-CLIP image side by side.

    longclip-diffusers demo --tiny-random        # tiny random models, any machine
    longclip-diffusers demo --pipeline stabilityai/stable-diffusion-xl-base-1.0 \\
        --long-clip BeichenZhang/LongCLIP-L      # the real thing (GPU advised)

Needs the ``[demo]`` extra (gradio); only ``longclip-diffusers demo`` imports this module. The page shows a live token meter (what a
77-token encoder drops, what falls past 248), and Generate renders both images with the same
seed from one UNet and VAE shared by the two pipelines.
"""

from __future__ import annotations

import os

# Before gradio is imported: the app must not phone home (analytics, version check).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from diffusers import DiffusionPipeline  # noqa: E402

from .. import tiny  # noqa: E402
from ..devices import default_device, inference_dtype  # noqa: E402
from ..drop_in.swap_encoders import long_clip_pair  # noqa: E402
from ..io.loading import resolve_pipeline  # noqa: E402
from ..length.tokens import LONG_LENGTH, STOCK_LENGTH, token_report  # noqa: E402

logger = logging.getLogger("longclip_diffusers.demo")

#: Characters a prompt may have: generous for 248 tokens (about 1,000-1,500 characters of
#: English), small enough that nobody can post a novel into the tokenizer.
MAX_PROMPT_CHARS = 3000
#: Requests allowed to wait in the queue; one generation runs at a time.
MAX_QUEUE = 16
DROPPED_AT_77 = f"dropped by a {STOCK_LENGTH}-token encoder"
PAST_248 = f"past {LONG_LENGTH} tokens: dropped by both"
#: Gradio's highlighted text breaks lines inside words; the meter reads better whole-word.
PAGE_CSS = "#token-meter .textfield { word-break: normal; }"
IMAGE_HEIGHT = 384


@dataclass
class Studio:
    """The two pipelines (sharing UNet, VAE and scheduler config) and the page's defaults."""

    # Any: a diffusers pipeline's components (unet, tokenizer, ...) are attributes it registers at
    # run time, which no static type lists
    stock: Any
    long: Any
    title: str
    random_weights: bool
    width: int
    height: int
    steps: int
    guidance: float

    @property
    def tokenizer(self):
        return self.long.tokenizer


def load_studio(
    pipeline: str,
    long_clip: str,
    tiny_random: bool = False,
    device: str | None = None,
    long_clip_g: str | None = None,
) -> Studio:
    """Load the stock pipeline once and derive the Long-CLIP one from it (shared UNet/VAE);
    ``long_clip_g``, a trained Long-CLIP-G, takes SDXL's ``text_encoder_2`` slot instead of
    stretching it."""
    stock: Any
    long: Any
    if tiny_random:
        stock, long = long_clip_pair(*tiny.tiny_sd_pipeline_and_long_clip())
        title = "tiny random SD pipeline + tiny stretched text encoder"
        steps, guidance = 4, 5.0
    else:
        device = device or default_device()
        stock = DiffusionPipeline.from_pretrained(resolve_pipeline(pipeline), torch_dtype=inference_dtype(device)).to(
            device
        )
        stock, long = long_clip_pair(stock, long_clip, text_encoder_2=long_clip_g)
        title = f"{pipeline} + {long_clip}" + (f" + {long_clip_g}" if long_clip_g else "")
        steps, guidance = 30, 5.0 if hasattr(stock, "text_encoder_2") else 7.5
    size = stock.unet.config.sample_size * stock.vae_scale_factor
    for pipe in (stock, long):
        pipe.set_progress_bar_config(disable=True)
    return Studio(stock, long, title, tiny_random, size, size, steps, guidance)


def token_meter(prompt: str, tokenizer) -> tuple[list[tuple[str, str | None]], str]:
    """The meter for ``prompt``: highlighted text (what a 77-token encoder drops, what falls past
    248) and a one-line count."""
    report = token_report(prompt or "", tokenizer, max_length=LONG_LENGTH)
    return meter_segments(report), meter_summary(report)


def meter_segments(report) -> list[tuple[str, str | None]]:
    """The whole prompt as ``(text, category)`` pieces: None for words every encoder reads,
    :data:`DROPPED_AT_77` or :data:`PAST_248` for the others (a word cut in two counts as
    dropped). Whitespace goes with the word it follows, so the text reads as typed."""
    segments: list[tuple[str, str | None]] = []
    position = 0
    for word in report.words:
        if not word.fits(report.max_length):
            category = PAST_248
        elif not word.fits(report.stock_length):
            category = DROPPED_AT_77
        else:
            category = None
        if word.start > position and segments:
            text, previous = segments[-1]
            segments[-1] = (text + report.prompt[position : word.start], previous)
        segments.append((report.prompt[word.start : word.end], category))
        position = word.end
    return segments


def meter_summary(report) -> str:
    """``**N words, T tokens.**`` and what each encoder reads of them."""
    words, tokens = len(report.words), report.token_count
    head = f"**{words} words, {tokens} tokens.**"
    dropped, past = report.dropped_by_stock, report.dropped
    if not dropped:
        return f"{head} Both encoders read all of it."
    text = f'{head} A {STOCK_LENGTH}-token encoder drops {len(dropped)} words (from "{dropped[0].text}" on, orange)'
    if past:
        return text + f"; {len(past)} words are past {LONG_LENGTH} tokens (red): Long-CLIP drops those too."
    return text + f"; Long-CLIP reads all {tokens} tokens."


def generate(
    studio: Studio,
    prompt: str,
    negative_prompt: str,
    seed: float,
    steps: float,
    guidance: float,
    width: float,
    height: float,
    progress=None,
):
    """Both images for one prompt and seed; problems come back as ``gr.Error`` messages."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise gr.Error("Type a prompt first.")
    if len(prompt) > MAX_PROMPT_CHARS or len(negative_prompt or "") > MAX_PROMPT_CHARS:
        raise gr.Error(f"Prompts are limited to {MAX_PROMPT_CHARS} characters.")
    steps, width, height, seed = int(steps), int(width), int(height), int(seed)
    if width % 8 or height % 8:
        raise gr.Error(f"Width and height must be multiples of 8 (got {width} x {height}).")
    images = []
    try:
        for index, (pipe, name) in enumerate(((studio.stock, "stock CLIP"), (studio.long, "Long-CLIP"))):
            images.append(
                pipe(
                    prompt=prompt,
                    negative_prompt=negative_prompt or None,
                    num_inference_steps=steps,
                    guidance_scale=float(guidance),
                    width=width,
                    height=height,
                    generator=torch.Generator("cpu").manual_seed(seed),
                    callback_on_step_end=_progress_callback(progress, index, steps, name),
                ).images[0]
            )
    except Exception as exc:
        logger.exception("generation failed")
        raise gr.Error(f"Generation failed: {exc}", print_exception=False) from exc
    return images[0], images[1], f"Seed {seed}, {steps} steps, guidance {guidance:g}, {width} x {height}."


def _progress_callback(progress, index: int, steps: int, name: str):
    def on_step_end(pipe, step, timestep, tensors):
        if progress is not None:
            progress((index * steps + step + 1, 2 * steps), desc=f"{name} image")
        return tensors

    return on_step_end


def build_demo(studio: Studio):
    """The page (prompt, live token meter, controls, the two images side by side), queued."""
    with gr.Blocks(title="Long-CLIP prompt studio", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Long-CLIP prompt studio\n"
            f"Stock CLIP reads the first {STOCK_LENGTH} tokens of a prompt; Long-CLIP reads "
            f"{LONG_LENGTH}. Both images below use the same seed, UNet and VAE.\n\n"
            f"Models: `{studio.title}`"
        )
        if studio.random_weights:
            gr.Markdown(
                "**Random weights** (`--tiny-random`): tiny untrained models built in code, so "
                "the images are noise. The token meter and the controls are real.",
                elem_id="random-weights",
            )
        prompt = gr.Textbox(
            label="Prompt",
            lines=5,
            max_length=MAX_PROMPT_CHARS,
            placeholder="A long, detailed prompt: every word up to 248 tokens counts.",
            elem_id="prompt",
        )
        negative = gr.Textbox(label="Negative prompt", lines=1, max_length=MAX_PROMPT_CHARS)
        count = gr.Markdown(elem_id="token-count")
        meter = gr.HighlightedText(
            label="Token meter",
            color_map={DROPPED_AT_77: "orange", PAST_248: "red"},
            show_legend=True,
            combine_adjacent=True,
            elem_id="token-meter",
        )
        with gr.Row():
            seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=2**32 - 1)
            steps = gr.Slider(1, 100, value=studio.steps, step=1, label="Steps")
            guidance = gr.Slider(0.0, 20.0, value=studio.guidance, step=0.5, label="Guidance")
            width = gr.Slider(64, 2048, value=studio.width, step=8, label="Width")
            height = gr.Slider(64, 2048, value=studio.height, step=8, label="Height")
        run = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Row():
            stock_image = _result_image(f"Stock CLIP (first {STOCK_LENGTH} tokens)", "stock-image")
            long_image = _result_image(f"Long-CLIP ({LONG_LENGTH} tokens)", "long-image")
        status = gr.Markdown(elem_id="status")

        def update_meter(text):
            return token_meter(text, studio.tokenizer)

        def run_both(text, negative_text, seed_value, steps_value, guidance_value, w, h, progress=gr.Progress()):
            return generate(studio, text, negative_text, seed_value, steps_value, guidance_value, w, h, progress)

        prompt.change(
            update_meter,
            prompt,
            [meter, count],
            show_progress="hidden",
            trigger_mode="always_last",
            concurrency_limit=None,
        )
        run.click(
            run_both,
            [prompt, negative, seed, steps, guidance, width, height],
            [stock_image, long_image, status],
            concurrency_limit=1,
        )
        demo.load(update_meter, prompt, [meter, count], show_progress="hidden")
    # one generation at a time (they hold the whole accelerator); a bounded line behind it
    demo.queue(default_concurrency_limit=1, max_size=MAX_QUEUE)
    return demo


def _result_image(label: str, elem_id: str):
    return gr.Image(label=label, type="pil", format="png", height=IMAGE_HEIGHT, interactive=False, elem_id=elem_id)


def launch(args: argparse.Namespace) -> None:
    """Load the models, then serve the page until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    studio = load_studio(args.pipeline, args.long_clip, tiny_random=args.tiny_random, long_clip_g=args.long_clip_g)
    build_demo(studio).launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        ssr_mode=False,
        show_error=False,
        theme=_offline_theme(),
        css=PAGE_CSS,
    )


def _offline_theme():
    """Gradio's default theme with system fonts: the stock theme pulls Google Fonts."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "monospace"],
    )
