"""Names and numbers the command line needs before any model is loaded.

This module imports nothing heavy, so ``longclip-diffusers --help`` can build every parser
without torch, transformers or diffusers. Each constant is defined here once; the modules that
use it import it from here.
"""

from __future__ import annotations

#: Positions of OpenAI CLIP's text encoder, and so of SD's stock encoders.
STOCK_LENGTH = 77
#: Positions of a Long-CLIP text encoder: keep 20 rows, stretch the other 57 by 4
#: (Long-CLIP paper, section 3.1; docs/stretching.md).
LONG_LENGTH = 248
#: Rows kept unchanged by knowledge-preserved stretching (Long-CLIP's released code).
DEFAULT_KEEP = 20
#: Stretch factor of the other rows: 20 + 57 * 4 = 248.
DEFAULT_RATIO = 4.0

#: dtype names the CLI and ``torch_dtype`` strings accept.
DTYPE_NAMES: tuple[str, ...] = ("float32", "float16", "bfloat16")

#: Hub repos of the released Long-CLIP checkpoints -> the checkpoint file in each.
KNOWN_CHECKPOINTS: dict[str, str] = {
    "BeichenZhang/LongCLIP-L": "longclip-L.pt",
    "BeichenZhang/LongCLIP-B": "longclip-B.pt",
}
#: Hub repos of the released TULIP checkpoints (open_clip format; the file is found by listing).
KNOWN_TULIP_REPOS: tuple[str, ...] = ("mderakhshani/TULIP",)
#: Long-CLIP keeps CLIP's BPE vocabulary, so a checkpoint without a tokenizer of its own uses
#: CLIP-L's.
DEFAULT_TOKENIZER = "openai/clip-vit-large-patch14"
#: The diffusers pipeline the command line and the demo generate with when none is named: SDXL
#: base, whose two CLIP encoders both get 248 tokens.
DEFAULT_PIPELINE = "stabilityai/stable-diffusion-xl-base-1.0"
#: The Long-CLIP encoder swapped in by default: the CLIP-L sized release, as wide as SD's slot.
DEFAULT_LONG_CLIP = "BeichenZhang/LongCLIP-L"

#: Which hidden layers feed the UNet (:mod:`longclip_diffusers.drop_in.layer_recipes`).
RECIPES: tuple[str, ...] = ("standard", "longclip")

#: Pipelines ``eval generation`` compares (:func:`longclip_diffusers.evaluation.generation.build_candidates`):
#: stock (77 tokens), compel's 75-token chunks, Long-CLIP with each recipe, TULIP.
GENERATION_PIPELINES: tuple[str, ...] = ("stock", "compel", *(f"longclip-{recipe}" for recipe in RECIPES), "tulip")
#: The ones compared when none are named: all but TULIP, which needs its own checkpoint.
DEFAULT_GENERATION_PIPELINES: tuple[str, ...] = GENERATION_PIPELINES[:-1]

#: Retrieval benchmarks ``eval`` reads, each from its published layout.
RETRIEVAL_DATASETS: tuple[str, ...] = ("urban1k", "sharegpt4v", "dci", "coco", "flickr30k")
#: Zero-shot classification benchmarks ``eval`` reads.
CLASSIFICATION_DATASETS: tuple[str, ...] = ("imagenet", "cifar10", "cifar100")
#: Caption lengths (tokens, start and end included) of the effective-length curve.
CURVE_LENGTHS: tuple[int, ...] = (10, 20, 30, 50, 77, 100, 150, 200, 248)
