"""One Long-CLIP training step: ours against a plain implementation of the released recipe.

Ours (``longclip_diffusers.training``): each text pass runs at the batch's longest real length
(~170 tokens long, ~20 short), PCA over the global batch. Released recipe's computation: every
caption at 248 tokens, per-process PCA (``torch.svd`` as released), the same loss otherwise.
Both use the same stretched model (CLIP-L text tower: 768 wide, 12 layers, 12 heads; a smaller
vision tower, stated in the JSON), the same batch, SDPA attention and AdamW. Each variant runs
in its own child process so that its peak memory (``ru_maxrss`` on CPU,
``max_memory_allocated`` on GPU) is its own; the variants alternate for ``--rounds`` rounds and
the fastest step of each counts (the machine may be shared).

    python benchmarks/bench_train.py --json benchmarks/results/bench_train_cpu.json

``--suite bigg`` measures what the Long-CLIP-G options buy instead, on OpenCLIP ViT-bigG/14's
shapes (text 1280 wide, 20 heads, MLP 5120, GELU, projection 1280; vision 1664 wide, 16 heads,
MLP 8192, 224 px in patches of 14) at a shallow depth (``--text-layers``, ``--vision-layers``):
one training step (forward, backward, AdamW) of the frozen-vision run, of the run on cached
image features (no vision tower), and of that run with gradient caching (``--micro-batch``),
as time and peak-memory ratios to the frozen-vision run:

    python benchmarks/bench_train.py --suite bigg --json benchmarks/results/bench_train_bigg_cpu.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from longclip_diffusers.cli.options import device_name

VARIANTS = ("ours", "released")
BIGG_VARIANTS = ("frozen-vision", "cached-features", "cached-features+micro-batch")
LONG_TOKENS = 170
SHORT_TOKENS = 20


def write_inputs(args, folder: Path) -> None:
    """Build the model and batch once, in the parent, so both children start from identical
    weights and data."""
    from safetensors.torch import save_file

    from longclip_diffusers.tiny import TINY_WORDS, tiny_clip_model, tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer(model_max_length=248)
    model = tiny_clip_model(
        seed=0,
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        image_size=args.image_size,
        patch_size=16,
        projection_dim=768,
        tokenizer=tokenizer,
    )
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    generator = torch.Generator().manual_seed(0)
    words = list(TINY_WORDS)

    def caption(tokens: int) -> str:  # tiny-vocabulary words are one token each (+ BOS/EOS)
        picks = torch.randint(len(words), (tokens - 2,), generator=generator).tolist()
        return " ".join(words[i] for i in picks)

    def ids(lengths: list[int]) -> torch.Tensor:
        return tokenizer(
            [caption(n) for n in lengths], padding="max_length", max_length=248, return_tensors="pt"
        ).input_ids

    batch = range(args.batch_size)
    save_file(
        {
            "pixel_values": torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=generator),
            "long_ids": ids([LONG_TOKENS - i % 7 for i in batch]),
            "short_ids": ids([SHORT_TOKENS - i % 3 for i in batch]),
        },
        str(folder / "batch.safetensors"),
    )


def load_inputs(folder: Path):
    from safetensors.torch import load_file
    from transformers import CLIPModel, CLIPTokenizer

    from longclip_diffusers.training import prepare_longclip_model

    model = prepare_longclip_model(CLIPModel.from_pretrained(folder / "model"), keep=20, ratio=4.0)
    tokenizer = CLIPTokenizer.from_pretrained(folder / "model")
    batch = load_file(str(folder / "batch.safetensors"))
    return model, tokenizer, batch["pixel_values"], batch["long_ids"], batch["short_ids"]


def ours_step(features, pixels, long_ids, short_ids):
    from longclip_diffusers.training import pcm_loss

    out = features(pixels, long_ids, short_ids)
    return pcm_loss(out.image, out.long_text, out.short_text, out.logit_scale).total


def released_pca(x, dim):
    mean = x.mean(dim=0)
    centred = (x - mean.unsqueeze(0)).float()
    _, _, v = torch.svd(centred)
    components = v[:, :dim]
    return centred @ components @ components.T + mean


def released_step(model, pixels, long_ids, short_ids):
    image = F.normalize(model.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
    long = F.normalize(model.get_text_features(input_ids=long_ids).pooler_output, dim=-1)
    short = F.normalize(model.get_text_features(input_ids=short_ids).pooler_output, dim=-1)
    coarse = released_pca(image, 32)
    scale = model.logit_scale.exp()
    targets = torch.arange(len(image), device=image.device)

    def clip_loss(a, b):
        logits = scale * a @ b.T
        return (
            F.cross_entropy(logits, targets, label_smoothing=0.1)
            + F.cross_entropy(logits.T, targets, label_smoothing=0.1)
        ) / 2

    return clip_loss(image, long) + clip_loss(coarse, short)


def run_variant(args) -> dict:
    from longclip_diffusers.training import ContrastiveFeatures
    from longclip_diffusers.training.optimization import make_optimizer

    torch.manual_seed(0)
    device = torch.device(args.device)
    model, tokenizer, pixels, long_ids, short_ids = load_inputs(Path(args.inputs))
    model.to(device)
    pixels, long_ids, short_ids = pixels.to(device), long_ids.to(device), short_ids.to(device)
    optimizer = make_optimizer(model, lr=1e-6, weight_decay=0.01)
    features = ContrastiveFeatures(model, tokenizer.eos_token_id)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> float:
        with autocast:
            if args.variant == "ours":
                loss = ours_step(features, pixels, long_ids, short_ids)
            else:
                loss = released_step(model, pixels, long_ids, short_ids)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return _timed(args, step)


def write_bigg_inputs(args, folder: Path) -> None:
    """A bigG-shaped CLIPModel (random weights, ``--text-layers`` / ``--vision-layers`` deep) and
    one batch, written once so that every variant starts from the same weights and data."""
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    from longclip_diffusers.tiny import TINY_WORDS, tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer(model_max_length=248)
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=1280,
        intermediate_size=5120,
        num_hidden_layers=args.text_layers,
        num_attention_heads=20,
        max_position_embeddings=77,
        projection_dim=1280,
        hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=1664,
        intermediate_size=8192,
        num_hidden_layers=args.vision_layers,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=1280,
        hidden_act="gelu",
    )
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=1280))
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    generator = torch.Generator().manual_seed(0)
    words = list(TINY_WORDS)

    def ids(lengths: list[int]) -> torch.Tensor:
        captions = [
            " ".join(words[i] for i in torch.randint(len(words), (n - 2,), generator=generator).tolist())
            for n in lengths
        ]
        return tokenizer(captions, padding="max_length", max_length=248, return_tensors="pt").input_ids

    batch = range(args.batch_size)
    pixels = torch.randn(args.batch_size, 3, 224, 224, generator=generator)
    with torch.no_grad():
        image_features = model.get_image_features(pixel_values=pixels).pooler_output
    save_file(
        {
            "pixel_values": pixels,
            "image_features": image_features.to(torch.float16),  # as cache-image-features stores them
            "long_ids": ids([LONG_TOKENS - i % 7 for i in batch]),
            "short_ids": ids([SHORT_TOKENS - i % 3 for i in batch]),
        },
        str(folder / "batch.safetensors"),
    )


def run_bigg_variant(args) -> dict:
    """One variant of ``--suite bigg`` in this (child) process: its step times and peak memory."""
    from accelerate import Accelerator
    from safetensors.torch import load_file
    from transformers import CLIPModel

    from longclip_diffusers.compat import text_config
    from longclip_diffusers.training import ContrastiveFeatures, pcm_loss, prepare_longclip_model
    from longclip_diffusers.training.gather import BatchShards
    from longclip_diffusers.training.gradient_cache import contrastive_backward
    from longclip_diffusers.training.optimization import make_optimizer
    from longclip_diffusers.training.text_only import load_text_only_clip

    torch.manual_seed(0)
    folder = Path(args.inputs)
    batch = load_file(str(folder / "batch.safetensors"))
    cached = args.variant != "frozen-vision"
    base = load_text_only_clip(folder / "model") if cached else CLIPModel.from_pretrained(folder / "model")
    model = prepare_longclip_model(base, keep=20, ratio=4.0, freeze_vision=True)
    model.to(args.device)
    images = batch["image_features"] if cached else batch["pixel_values"]
    inputs = tuple(t.to(args.device) for t in (images, batch["long_ids"], batch["short_ids"]))
    accelerator = Accelerator(cpu=args.device == "cpu", mixed_precision="bf16" if args.device == "cuda" else "no")
    features = ContrastiveFeatures(model, text_config(model).eos_token_id)
    optimizer = make_optimizer(model, lr=1e-6, weight_decay=0.01)
    shards = BatchShards((args.batch_size,), 0)
    micro = args.micro_batch if args.variant.endswith("micro-batch") else None

    def loss_of(image, long_text, short_text, logit_scale):
        return pcm_loss(image, long_text, short_text, logit_scale)

    def step() -> float:
        loss = contrastive_backward(accelerator, features, inputs, shards, loss_of, micro)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.total.item()

    return _timed(args, step)


def _timed(args, step) -> dict:
    device = torch.device(args.device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    first_loss = step()  # warm-up: allocator, kernels, optimizer state
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        memory_kind = "torch.cuda.max_memory_allocated"
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory_kind = "ru_maxrss of the child process (model + optimizer state + step)"
    return {
        "step_seconds": times,
        "peak_memory_mb": peak_mb,
        "memory_measure": memory_kind,
        "first_step_loss": first_loss,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--suite", choices=("released", "bigg"), default="released", help="what to compare")
    parser.add_argument("--device", type=device_name, default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default: 2; bigg: 16)")
    parser.add_argument("--steps", type=int, default=1, help="timed steps after one warm-up step, per round")
    parser.add_argument("--rounds", type=int, default=2, help="times each variant runs, alternating")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--text-layers", type=int, default=2, help="bigg: depth of the text tower (bigG: 32)")
    parser.add_argument("--vision-layers", type=int, default=2, help="bigg: depth of the vision tower (bigG: 48)")
    parser.add_argument("--micro-batch", type=int, default=4, help="bigg: rows per pass with gradient caching")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (16 if args.suite == "bigg" else 2)
    if args.variant:
        run = run_bigg_variant if args.suite == "bigg" else run_variant
        print(json.dumps(run(args)))
        return 0

    variants = BIGG_VARIANTS if args.suite == "bigg" else VARIANTS
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory() as folder:
        (write_bigg_inputs if args.suite == "bigg" else write_inputs)(args, Path(folder))
        # alternate the variants so that load from other users of the machine hits all alike
        for _ in range(args.rounds):
            for variant in variants:
                command = [sys.executable, __file__, "--variant", variant, "--inputs", folder, "--suite", args.suite]
                command += ["--device", args.device, "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
                command += ["--micro-batch", str(args.micro_batch)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"{variant}: {runs[variant][-1]['step_seconds']} s", file=sys.stderr)
    results = {
        variant: {
            # the least disturbed step: on a shared machine, slower ones measure the neighbours
            "best_step_seconds": min(t for run in done_runs for t in run["step_seconds"]),
            "step_seconds": [t for run in done_runs for t in run["step_seconds"]],
            "peak_memory_mb": max(run["peak_memory_mb"] for run in done_runs),
            "memory_measure": done_runs[0]["memory_measure"],
            "first_step_loss": done_runs[0]["first_step_loss"],
        }
        for variant, done_runs in runs.items()
    }
    report = (bigg_report if args.suite == "bigg" else released_report)(args, results)
    report["command"] = "python benchmarks/bench_train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = json.dumps(report, indent=2)
    if args.json:
        from longclip_diffusers.io.atomic import atomic_write_file

        with atomic_write_file(args.json) as staging:
            staging.write_text(text + "\n")
    print(text)
    return 0


def _environment(args) -> dict:
    return {
        "device": args.device if args.device != "cuda" else torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def released_report(args, results: dict) -> dict:
    return {
        "benchmark": "one Long-CLIP training step (forward, backward, AdamW), ours vs the released recipe's computation",
        **_environment(args),
        "model": {
            "text": "CLIP-L text tower: 768 wide, 12 layers, 12 heads, 248 positions (stretched), random weights",
            "vision": f"smaller than ViT-L: 768 wide, 12 layers, patch 16, {args.image_size} px ({(args.image_size // 16) ** 2} patches)",
            "vocabulary": "the tiny test tokenizer's (each word one token), so the token table is small",
        },
        "batch_size": args.batch_size,
        "caption_tokens": {"long": f"~{LONG_TOKENS}", "short": f"~{SHORT_TOKENS}", "padded_to": 248},
        "mixed_precision": "bf16 autocast" if args.device == "cuda" else "fp32",
        "ours": results["ours"],
        "released": results["released"],
        "speedup": results["released"]["best_step_seconds"] / results["ours"]["best_step_seconds"],
        "memory_ratio_ours_over_released": results["ours"]["peak_memory_mb"] / results["released"]["peak_memory_mb"],
        "same_first_step_loss": abs(results["ours"]["first_step_loss"] - results["released"]["first_step_loss"])
        < 1e-3,
    }


def bigg_report(args, results: dict) -> dict:
    frozen = results["frozen-vision"]

    def ratios(variant: str) -> dict:
        return {
            "time": results[variant]["best_step_seconds"] / frozen["best_step_seconds"],
            "peak_memory": results[variant]["peak_memory_mb"] / frozen["peak_memory_mb"],
        }

    return {
        "benchmark": "one Long-CLIP-G training step (forward, backward, AdamW) with the vision tower frozen: "
        "uncached, on cached image features, and on cached features with gradient caching",
        **_environment(args),
        "model": {
            "text": f"OpenCLIP ViT-bigG/14 text tower shape (1280 wide, 20 heads, MLP 5120, GELU, projection "
            f"1280, 248 positions after stretching) at {args.text_layers} of its 32 layers, random weights",
            "vision": f"bigG vision shape (1664 wide, 16 heads, MLP 8192, 224 px, patches of 14: 257 tokens) "
            f"at {args.vision_layers} of its 48 layers, frozen",
            "vocabulary": "the tiny test tokenizer's (each word one token), so the token table is small",
        },
        "batch_size": args.batch_size,
        "micro_batch": args.micro_batch,
        "caption_tokens": {"long": f"~{LONG_TOKENS}", "short": f"~{SHORT_TOKENS}", "padded_to": 248},
        "mixed_precision": "bf16 autocast" if args.device == "cuda" else "fp32",
        "cached_features_dtype": "float16, as cache-image-features writes them by default",
        **results,
        "ratios_to_frozen_vision": {variant: ratios(variant) for variant in BIGG_VARIANTS[1:]},
        "first_step_losses_agree": max(abs(r["first_step_loss"] - frozen["first_step_loss"]) for r in results.values())
        < 1e-2,
    }


if __name__ == "__main__":
    sys.exit(main())
