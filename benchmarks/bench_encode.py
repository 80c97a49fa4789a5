"""What 248 tokens cost: SDXL prompt encoding at real encoder sizes, and one UNet block.

Random weights at the real shapes (no download): SDXL's CLIP-L text encoder (768 wide, 12 layers,
123M parameters) and OpenCLIP bigG text encoder with projection (1280 wide, 32 layers, 20 heads,
MLP 5120, 695M parameters), both with 248 positions (a pass over 77 tokens costs the same as in a
77-position model: the table size does not enter the compute). One SDXL prompt encoding is both
encoders' penultimate hidden states concatenated (768 + 1280 = 2048) plus bigG's pooled
projection (docs/sdxl-recipes.md), with diffusers' standard read-out from
``longclip_diffusers.drop_in.layer_recipes``. Three ways to encode a prompt of 246 content tokens:

  (a) stock: cut to 77 tokens (75 content + start/end), everything after is lost;
  (b) Long-CLIP: all 248 tokens in one pass;
  (c) chunked (compel / A1111): 75-token windows, each with its own start/end tokens, padded to
      77, encoded one after the other (4 chunks) and concatenated to a 308-token context; no
      attention across chunks, pooled vector from the first chunk.

Each at batch 1 and batch 2 (classifier-free guidance encodes the negative prompt too).

The UNet side: one SDXL cross-attention ``BasicTransformerBlock`` at the real dims of the UNet's
deepest level (1280 channels, 20 heads x 64, GEGLU MLP, cross-attention from 2048): at 1024 px
the latent is 128 x 128 and that level is 32 x 32 = 1024 tokens. It runs at batch 2 (CFG) with a
77-, 248- and 308-token context.

Times are medians of ``--repeats`` timed runs after ``--warmup`` runs: wall seconds, and on
CPU also the process's CPU seconds (the steadier figure on a shared machine). Peak memory is the
extra memory a run needs on top of the loaded weights: on CUDA from the allocator's peak, on
Linux CPUs from the process's resident high-water mark, reset before each case. float32 on CPU,
float16 on CUDA unless ``--dtype`` says otherwise.

    python benchmarks/bench_encode.py --json benchmarks/results/bench_encode_cpu.json
    python benchmarks/bench_encode.py --device cuda --dtype bfloat16 --json OUT.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from longclip_diffusers.cli.options import device_name
from longclip_diffusers.drop_in.layer_recipes import sdxl_layer
from longclip_diffusers.io.atomic import atomic_write_file

BOS, EOS, VOCAB = 49406, 49407, 49408
CLIP_LENGTH, LONG_LENGTH = 77, 248
CHUNK_CONTENT = CLIP_LENGTH - 2
PROMPT_CONTENT = LONG_LENGTH - 2
UNET_TOKENS, UNET_DIM, UNET_HEADS, UNET_CROSS_DIM = 32 * 32, 1280, 20, 2048


def encoder_configs() -> dict[str, CLIPTextConfig]:
    """SDXL's two text encoders at their real shapes, with 248 positions."""
    common = dict(
        vocab_size=VOCAB, max_position_embeddings=LONG_LENGTH, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS
    )
    return {
        "clip_l": CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            projection_dim=768,
            hidden_act="quick_gelu",
            **common,
        ),
        "bigg": CLIPTextConfig(
            hidden_size=1280,
            intermediate_size=5120,
            num_hidden_layers=32,
            num_attention_heads=20,
            projection_dim=1280,
            hidden_act="gelu",
            **common,
        ),
    }


def build_encoders(device: torch.device, dtype: torch.dtype):
    configs = encoder_configs()
    torch.manual_seed(0)
    clip_l = CLIPTextModel(configs["clip_l"]).to(device, dtype).eval()
    bigg = CLIPTextModelWithProjection(configs["bigg"]).to(device, dtype).eval()
    return clip_l, bigg


def prompt_inputs(batch: int, device: torch.device) -> dict[str, list[torch.Tensor]]:
    """Token ids of one 246-content-token prompt per row, laid out for (a), (b) and (c)."""
    generator = torch.Generator().manual_seed(1)
    content = torch.randint(0, BOS, (batch, PROMPT_CONTENT), generator=generator)

    def framed(tokens: torch.Tensor, length: int) -> torch.Tensor:
        ids = torch.full((batch, length), EOS)
        ids[:, 0] = BOS
        ids[:, 1 : 1 + tokens.shape[1]] = tokens
        return ids.to(device)

    chunks = content.split(CHUNK_CONTENT, dim=1)
    return {
        "a_stock_77": [framed(content[:, :CHUNK_CONTENT], CLIP_LENGTH)],
        "b_longclip_248": [framed(content, LONG_LENGTH)],
        "c_chunked_4x77": [framed(chunk, CLIP_LENGTH) for chunk in chunks],
    }


def sdxl_encode(clip_l, bigg, windows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL conditioning of one prompt given as one window (a, b) or several chunks (c)."""
    contexts, pooled = [], None
    for ids in windows:
        first = clip_l(input_ids=ids, output_hidden_states=True)
        second = bigg(input_ids=ids, output_hidden_states=True)
        contexts.append(
            torch.cat(
                [
                    sdxl_layer("standard", clip_l, first.hidden_states),
                    sdxl_layer("standard", bigg, second.hidden_states),
                ],
                dim=-1,
            )
        )
        pooled = second.text_embeds if pooled is None else pooled
    return torch.cat(contexts, dim=1), pooled


def unet_block(device: torch.device, dtype: torch.dtype):
    from diffusers.models.attention import BasicTransformerBlock

    torch.manual_seed(0)
    block = BasicTransformerBlock(
        dim=UNET_DIM,
        num_attention_heads=UNET_HEADS,
        attention_head_dim=UNET_DIM // UNET_HEADS,
        cross_attention_dim=UNET_CROSS_DIM,
        activation_fn="geglu",
    )
    return block.to(device, dtype).eval()


class PeakMemory:
    """Extra memory (MiB) a call needs on top of what is already allocated."""

    def __init__(self, device: torch.device):
        self.device = device
        self.libc = None
        if device.type == "cpu" and sys.platform.startswith("linux"):
            self.libc = ctypes.CDLL("libc.so.6")
            # Serve big blocks with mmap so a freed tensor leaves the resident set at once:
            # otherwise glibc keeps it and the next case reuses it unseen.
            self.libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD

    def measure(self, fn) -> tuple[object, float | None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            result = fn()
            torch.cuda.synchronize()
            return result, (torch.cuda.max_memory_allocated() - before) / 2**20
        if self.libc is None:
            return fn(), None
        self.libc.malloc_trim(0)
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the resident high-water mark
        except OSError:
            return fn(), None
        before = _proc_status_kib("VmRSS")
        result = fn()
        return result, (_proc_status_kib("VmHWM") - before) / 1024


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def timed(fn, device: torch.device, warmup: int, repeats: int, memory: PeakMemory) -> dict:
    """Median wall and CPU seconds of ``repeats`` runs after ``warmup`` runs; peak memory of the
    first timed run. CPU seconds (this process's, all threads) are the steadier figure on a CPU
    shared with other jobs, where wall time also counts the waits for a core."""
    for _ in range(warmup):
        fn()
    first, peak = memory.measure(lambda: _run_timed(fn, device))
    runs = [first] + [_run_timed(fn, device) for _ in range(repeats - 1)]
    result = {
        "seconds": round(statistics.median(wall for wall, _ in runs), 4),
        "runs": len(runs),
        "peak_mib": None if peak is None else round(peak, 1),
    }
    if device.type == "cpu":
        result["cpu_seconds"] = round(statistics.median(cpu for _, cpu in runs), 4)
    return result


def _run_timed(fn, device: torch.device) -> tuple[float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_text(device, dtype, warmup, repeats, memory) -> tuple[dict, list[dict], dict]:
    clip_l, bigg = build_encoders(device, dtype)
    encoders = {"clip_l_text": _params(clip_l), "bigg_text_with_projection": _params(bigg)}
    # One short pass first, so thread pools and kernel set-up are not billed to the first case
    # even with --warmup 0.
    sdxl_encode(clip_l, bigg, [prompt_inputs(1, device)["a_stock_77"][0][:, :8]])
    cases = []
    for batch in (1, 2):
        for mode, windows in prompt_inputs(batch, device).items():
            result = timed(lambda windows=windows: sdxl_encode(clip_l, bigg, windows), device, warmup, repeats, memory)
            context_tokens = sum(ids.shape[1] for ids in windows)
            cases.append(
                {
                    "mode": mode,
                    "batch": batch,
                    "passes_per_encoder": len(windows),
                    "context_shape": [batch, context_tokens, 768 + 1280],
                    **result,
                }
            )
            _log(f"text {mode} batch {batch}: {result}")
    ratios = {
        f"{clock}_batch{batch}": {
            "b_over_a": _ratio(cases, clock, batch, "b_longclip_248", "a_stock_77"),
            "b_over_c": _ratio(cases, clock, batch, "b_longclip_248", "c_chunked_4x77"),
        }
        for clock in _clocks(device)
        for batch in (1, 2)
    }
    return encoders, cases, ratios


def _clocks(device: torch.device) -> tuple[str, ...]:
    return ("seconds", "cpu_seconds") if device.type == "cpu" else ("seconds",)


def _ratio(cases: list[dict], clock: str, batch: int, mode: str, reference: str) -> float:
    times = {c["mode"]: c[clock] for c in cases if c["batch"] == batch}
    return round(times[mode] / times[reference], 3)


def bench_unet_block(device, dtype, warmup, repeats, memory) -> dict:
    block = unet_block(device, dtype)
    generator = torch.Generator().manual_seed(2)
    hidden = torch.randn(2, UNET_TOKENS, UNET_DIM, generator=generator).to(device, dtype)
    block(hidden[:, :64], encoder_hidden_states=hidden.new_zeros(2, 8, UNET_CROSS_DIM))  # set-up pass
    cases = []
    for length in (CLIP_LENGTH, LONG_LENGTH, 4 * CLIP_LENGTH):
        context = torch.randn(2, length, UNET_CROSS_DIM, generator=generator).to(device, dtype)
        result = timed(
            lambda context=context: block(hidden, encoder_hidden_states=context), device, warmup, repeats, memory
        )
        cases.append({"context_tokens": length, **result})
        _log(f"unet block, context {length}: {result}")
    ratios = {}
    for clock in _clocks(device):
        times = {c["context_tokens"]: c[clock] for c in cases}
        ratios[clock] = {
            "248_over_77": round(times[LONG_LENGTH] / times[CLIP_LENGTH], 3),
            "308_over_248": round(times[4 * CLIP_LENGTH] / times[LONG_LENGTH], 3),
        }
    return {
        "block": "diffusers BasicTransformerBlock (self-attn, cross-attn, GEGLU)",
        "dim": UNET_DIM,
        "heads": UNET_HEADS,
        "cross_attention_dim": UNET_CROSS_DIM,
        "image_tokens": UNET_TOKENS,
        "batch": 2,
        "parameters": _params(block),
        "cases": cases,
        "ratios": ratios,
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="OUT", help="write the results to this file")
    parser.add_argument("--device", type=device_name, default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype", choices=("float32", "float16", "bfloat16"), help="default: float32 on CPU, float16 on CUDA"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per case (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (default 3)")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: torch's); 1 avoids thread-barrier stalls on a CPU shared with other jobs",
    )
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    memory = PeakMemory(device)
    started = time.perf_counter()
    with torch.inference_mode():
        encoders, text_cases, ratios = bench_text(device, dtype, args.warmup, args.repeats, memory)
        unet = bench_unet_block(device, dtype, args.warmup, args.repeats, memory)
    results = {
        "command": "python benchmarks/bench_encode.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "warmup": args.warmup,
        "repeats": args.repeats,
        "prompt_content_tokens": PROMPT_CONTENT,
        "encoder_parameters": encoders,
        "text_encoding": text_cases,
        "ratios": ratios,
        "unet_block": unet,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print(report(results))
    if args.json:
        with atomic_write_file(args.json) as staging:
            staging.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return results


def report(results: dict) -> str:
    cpu = "cpu_seconds" in results["text_encoding"][0]
    lines = [
        f"{results['device']}, {results['dtype']}, {results['threads']} threads",
        f"{'SDXL prompt encoding':<22}{'batch':>6}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}  context",
    ]
    for case in results["text_encoding"]:
        lines.append(
            f"{case['mode']:<22}{case['batch']:>6}{case['seconds']:>9.2f}"
            f"{case['cpu_seconds'] if cpu else float('nan'):>9.2f}"
            f"{_mib(case['peak_mib']):>10}  {case['context_shape']}"
        )
    for name, ratio in results["ratios"].items():
        lines.append(f"{name}: b/a = {ratio['b_over_a']}, b/c = {ratio['b_over_c']}")
    unet = results["unet_block"]
    lines.append(f"UNet block ({unet['image_tokens']} image tokens, batch {unet['batch']})")
    for case in unet["cases"]:
        lines.append(
            f"  context {case['context_tokens']:>4}: {case['seconds']:.2f} s wall"
            + (f", {case['cpu_seconds']:.2f} s cpu" if cpu else "")
            + f", peak {_mib(case['peak_mib'])} MiB"
        )
    for clock, ratio in unet["ratios"].items():
        lines.append(f"  {clock}: 248/77 = {ratio['248_over_77']}, 308/248 = {ratio['308_over_248']}")
    return "\n".join(lines)


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    main()
