"""Check the Long-CLIP ComfyUI nodes, and the stand-ins the tests use for ComfyUI, against a real
ComfyUI checkout.

    COMFYUI_DIR=/path/to/ComfyUI python demos/comfyui/check_real_comfyui.py

ComfyUI runs on the CPU (``--cpu``) in this process; no server, no GPU, no download. The library
must be importable (``pip install -e .`` or ``PYTHONPATH=.``) and ComfyUI's own requirements
installed. Real-size random-weight CLIP-L, Long-CLIP-L and bigG files are written to a temporary
models folder (about 4.5 GB, and as much again of converted copies; ``--workdir`` keeps them for
the next run); the T5 of the Flux / SD3 checks keeps T5-XXL's width (4096) with one narrow layer,
through ComfyUI's own ``t5xxl_model_config`` option, because a random 4.7B-parameter T5 is not
needed to check that it is left untouched. Takes 10 to 30 minutes on two CPU cores and up to ~10 GB
of memory.

Two parts, one line per check, exit status 1 if any fails:

* ``standin``: each behaviour ``tests/comfyui_stubs`` imitates (CLIP cloning, patcher patches,
  tokenizer weighting and chunking, the CONDITIONING format, state-dict layout, tower sizing,
  model folders) run on the stand-in and on ComfyUI, compared;
* ``nodes``: the nodes loaded by ComfyUI's own custom-node loader and driven with ComfyUI's own
  nodes: every file form the loader takes, LoRA before Long-CLIP into CLIP, weighting, chunking,
  ``embedding:name``, clip-skip, the SDXL recipes, width checks, Flux.1 and SD3, and the example
  workflows in ``workflows/`` validated by ComfyUI's prompt validator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import io
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STANDIN_DIR = REPO / "tests" / "comfyui_stubs"
#: The ComfyUI release the stand-ins in tests/comfyui_stubs mirror.
MIRRORED_VERSION = "0.3.64"
WORKFLOWS = ("sd15", "sdxl", "flux")
#: T5-XXL's width with one narrow layer (ComfyUI's ``t5xxl_model_config`` overrides).
SMALL_T5 = {"num_layers": 1, "num_heads": 1, "d_kv": 64, "d_ff": 64}

LONG_PROMPT_WORDS = (
    "a quiet harbor town at dawn with fishing boats painted red blue and yellow resting on calm water "
    "while gulls circle above weathered wooden piers and an old lighthouse stands on the rocky point "
    "behind stacked lobster traps nets drying in the breeze and a bakery opening its shutters"
).split()


def words(count: int, offset: int = 0) -> str:
    return " ".join(LONG_PROMPT_WORDS[(i + offset) % len(LONG_PROMPT_WORDS)] for i in range(count))


class Report:
    """One line per check; failures keep their message."""

    def __init__(self):
        self.failed: list[str] = []
        self.passed = 0

    @contextlib.contextmanager
    def check(self, name: str):
        start = time.monotonic()
        note: list[str] = []
        try:
            yield note
        except Exception as exc:  # noqa: BLE001 - every failure is reported, the run goes on
            self.failed.append(name)
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            print(f"FAIL {name}: {detail}", flush=True)
            if os.environ.get("CHECK_TRACEBACK"):
                traceback.print_exc()
        else:
            self.passed += 1
            extra = f": {'; '.join(note)}" if note else ""
            print(f"PASS {name}{extra} ({time.monotonic() - start:.1f} s)", flush=True)
        finally:
            gc.collect()


def expect(condition, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def close(a, b, tol: float = 1e-3, what: str = "tensors") -> str:
    import torch

    expect(a.shape == b.shape, f"{what}: shapes {tuple(a.shape)} != {tuple(b.shape)}")
    diff = (a.float() - b.float()).abs().max().item()
    scale = b.float().abs().max().item()
    expect(diff <= tol * max(1.0, scale), f"{what}: max difference {diff:.3g} (scale {scale:.3g})")
    return f"{what} equal{' bit for bit' if torch.equal(a, b) else f' to {diff:.1g}'}"


# --- setting ComfyUI up ---------------------------------------------------------------------


def import_comfyui(comfyui_dir: Path):
    """Import ComfyUI as its main.py would, on the CPU, without a server."""
    sys.path.insert(0, str(comfyui_dir))
    own_argv = sys.argv
    sys.argv = [str(comfyui_dir / "main.py"), "--cpu"]
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.model_management  # noqa: F401 - reads the arguments
        import comfy.sd  # noqa: F401
        import folder_paths
        import nodes
    finally:
        sys.argv = own_argv
    logging.getLogger().setLevel(logging.WARNING)
    version = (comfyui_dir / "comfyui_version.py").read_text().split('"')[1]
    return nodes, folder_paths, version


def point_model_folders(folder_paths, models: Path) -> dict[str, Path]:
    names = ("text_encoders", "clip", "checkpoints", "loras", "embeddings", "diffusion_models", "vae")
    folders = {name: models / name for name in names}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    extensions = folder_paths.supported_pt_extensions
    table = folder_paths.folder_names_and_paths
    table["text_encoders"] = ([str(folders["text_encoders"]), str(folders["clip"])], extensions)
    for name in ("checkpoints", "loras", "embeddings", "diffusion_models", "vae"):
        table[name] = ([str(folders[name])], extensions)
    with contextlib.suppress(AttributeError):
        folder_paths.filename_list_cache.clear()
    return folders


def shrink_t5():
    """T5-XXL at its width of 4096 with one narrow layer, through ComfyUI's own config override."""
    from comfy.text_encoders import sd3_clip

    original = sd3_clip.T5XXLModel.__init__

    def small(self, *args, model_options=None, **kwargs):
        options = dict(model_options or {})
        options["t5xxl_model_config"] = {**options.get("t5xxl_model_config", {}), **SMALL_T5}
        original(self, *args, model_options=options, **kwargs)

    sd3_clip.T5XXLModel.__init__ = small


def load_standin(workdir: Path, comfyui_dir: Path):
    """The stand-in ``comfy`` package under the name ``comfy_standin``, with ComfyUI's tokenizer."""
    target = workdir / "standin" / "comfy_standin"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(STANDIN_DIR / "comfy", target)
    shutil.copytree(comfyui_dir / "comfy" / "sd1_tokenizer", target / "sd1_tokenizer")
    spec = importlib.util.spec_from_file_location(
        "comfy_standin", target / "__init__.py", submodule_search_locations=[str(target)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["comfy_standin"] = module
    spec.loader.exec_module(module)
    for name in ("sd", "sd1_clip", "sdxl_clip", "model_patcher", "text_encoders.flux", "text_encoders.sd3_clip"):
        importlib.import_module(f"comfy_standin.{name}")
    folder_spec = importlib.util.spec_from_file_location("standin_folder_paths", STANDIN_DIR / "folder_paths.py")
    folder_module = importlib.util.module_from_spec(folder_spec)
    folder_spec.loader.exec_module(folder_module)
    return module, folder_module


# --- real-size random weights ----------------------------------------------------------------


def random_like(shapes: dict, seed: int, dtype):
    """Random weights of these shapes: LayerNorm gains near 1, small biases, matrices scaled by
    1/sqrt(fan-in), embeddings small, so activations stay O(1)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if len(shape) == 0:
            out[key] = torch.tensor(4.6052, dtype=dtype)
            continue
        noise = torch.randn(shape, generator=generator)
        if "norm" in key or "ln_" in key or key.endswith(("layer_norm.weight",)):
            tensor = 1 + 0.05 * noise if key.endswith("weight") else 0.02 * noise
        elif "embedding" in key or key.startswith("shared") or "relative_attention_bias" in key:
            tensor = 0.02 * noise
        elif key.endswith("bias"):
            tensor = 0.02 * noise
        else:
            tensor = noise / math.sqrt(shape[-1])
        out[key] = tensor.to(dtype)
    return out


def clip_text_shapes(width: int, layers: int, positions: int, projection: bool) -> dict:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=width // 64,
        max_position_embeddings=positions,
        projection_dim=width,
    )
    with torch.device("meta"):
        model = CLIPTextModelWithProjection(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if not projection:
        shapes.pop("text_projection.weight")
    return shapes


def comfy_t5_shapes() -> dict:
    import comfy.ops
    import torch
    from comfy.text_encoders import t5

    config = json.loads((Path(t5.__file__).parent / "t5_config_xxl.json").read_text())
    config.update(SMALL_T5)
    model = t5.T5(config, torch.float16, "meta", comfy.ops.manual_cast)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def write_model_files(folders: dict[str, Path], workdir: Path) -> dict[str, Path]:
    """The files a ComfyUI user has, real size, random, float16 (as ComfyUI's own files)."""
    import torch
    from safetensors.torch import save_file

    from longclip_diffusers import tiny

    files = {
        "clip_l": folders["clip"] / "clip_l.safetensors",
        "sd15_clip_l": folders["text_encoders"] / "sd15_clip_l.safetensors",
        "clip_g": folders["clip"] / "sdxl_clip_g.safetensors",
        "longclip_pt": folders["clip"] / "longclip-L.pt",
        "longclip_b": folders["clip"] / "longclip-B.pt",
        "t5": folders["text_encoders"] / "t5xxl_small.safetensors",
        "sdxl_checkpoint": folders["checkpoints"] / "sdxl_text_encoders_only.safetensors",
        "prefixed": folders["clip"] / "comfy_clip_l_clip_g.safetensors",
    }
    if all(path.exists() for path in files.values()):
        return files
    f16 = torch.float16
    clip_l = random_like(clip_text_shapes(768, 12, 77, projection=True), 1, f16)
    save_file(clip_l, files["clip_l"])
    sd15 = dict(clip_l)
    sd15.pop("text_projection.weight")
    save_file(sd15, files["sd15_clip_l"])
    bigg = random_like(clip_text_shapes(1280, 32, 77, projection=True), 2, f16)
    save_file(bigg, files["clip_g"])
    # both towers, as ComfyUI saves a CLIP; the clip_g beside the real-size clip_l is shallow
    small_g = random_like(clip_text_shapes(1280, 2, 77, projection=True), 7, f16)
    prefixed = {f"clip_l.transformer.{k}": v for k, v in clip_l.items()}
    prefixed.update({f"clip_g.transformer.{k}": v for k, v in small_g.items()})
    save_file(prefixed, files["prefixed"])
    long_l = tiny.tiny_openai_state_dict(
        width=768, layers=12, embed_dim=768, context=248, vocab_size=49408, with_vision=False, seed=3
    )
    torch.save({k: v.to(f16) for k, v in long_l.items()}, files["longclip_pt"])
    long_b = tiny.tiny_openai_state_dict(
        width=512, layers=2, embed_dim=512, context=248, vocab_size=49408, with_vision=False, seed=4
    )
    torch.save(long_b, files["longclip_b"])
    save_file(random_like(comfy_t5_shapes(), 5, f16), files["t5"])
    # an SDXL checkpoint keeps bigG in OpenCLIP's layout; only its text encoders are written here
    openai_g = tiny.tiny_openai_state_dict(
        width=1280,
        layers=32,
        embed_dim=1280,
        context=77,
        vocab_size=49408,
        with_vision=False,
        two_position_tables=False,
        seed=6,
    )
    checkpoint = {f"conditioner.embedders.0.transformer.{k}": v for k, v in sd15.items()}
    checkpoint.update({f"conditioner.embedders.1.model.{k}": v.to(f16) for k, v in openai_g.items()})
    checkpoint["model.diffusion_model.out.2.weight"] = torch.zeros(4, 320, 3, 3, dtype=f16)
    save_file(checkpoint, files["sdxl_checkpoint"])
    return files


# --- part 1: the stand-ins against ComfyUI ---------------------------------------------------


def check_standins(report: Report, standin, standin_folders, folder_paths, files, folders, comfyui_dir: Path):
    import comfy.sd
    import comfy.sd1_clip
    import comfy.sdxl_clip
    import torch
    from safetensors.torch import load_file

    from longclip_diffusers.comfyui.clip_state_dicts import comfy_towers

    real_sd, fake_sd = comfy.sd, standin.sd

    prompts = [
        "a red cat",
        "a (red:1.3) cat, ((blue)) sky, (green) grass \\(not weighted\\)",
        words(300),
        words(120) + " (" + words(60, 3) + ":0.8) " + words(90, 5),
        words(239) + " supercalifragilisticexpialidocious antidisestablishmentarianism",
        words(244) + " red cat",
        "",
    ]
    with report.check("standin: tokenizer weighting and chunking (SD1, SDXL; 77 and 248 tokens)") as note:
        count = 0
        for length in (77, 248):
            data = {"clip_l_max_length": length, "clip_g_max_length": length}
            real_tokenizers = [
                comfy.sd1_clip.SD1Tokenizer(tokenizer_data=data),
                comfy.sdxl_clip.SDXLTokenizer(tokenizer_data=data),
            ]
            fake_tokenizers = [
                standin.sd1_clip.SD1Tokenizer(tokenizer_data=data),
                standin.sdxl_clip.SDXLTokenizer(tokenizer_data=data),
            ]
            for real, fake in zip(real_tokenizers, fake_tokenizers):
                for prompt in prompts:
                    for word_ids in (False, True):
                        got = fake.tokenize_with_weights(prompt, word_ids)
                        want = real.tokenize_with_weights(prompt, word_ids)
                        expect(got == want, f"{type(real).__name__} at {length}, {prompt[:40]!r}: {got} != {want}")
                        count += 1
        note.append(f"{count} tokenizations identical")

    sd15 = load_file(files["sd15_clip_l"])
    bigg = load_file(files["clip_g"])
    with report.check("standin: tower sizing and family from the state dicts (long_clipl rule)") as note:
        from longclip_diffusers.comfyui.clip_state_dicts import stretched_comfy_state_dict

        for state_dicts, kind in (
            ([sd15], "STABLE_DIFFUSION"),
            ([sd15, stretched_comfy_state_dict(bigg)], "STABLE_DIFFUSION"),
        ):
            real = real_sd.load_text_encoder_state_dicts(state_dicts, clip_type=real_sd.CLIPType[kind])
            fake = fake_sd.load_text_encoder_state_dicts(
                [{k: v.float() for k, v in sd.items()} for sd in state_dicts], clip_type=fake_sd.CLIPType[kind]
            )
            expect(type(real.cond_stage_model).__name__ == type(fake.cond_stage_model).__name__, "families differ")
            for tower in ("clip_l", "clip_g"):
                if hasattr(real.tokenizer, tower):
                    expect(
                        getattr(real.tokenizer, tower).max_length == getattr(fake.tokenizer, tower).max_length,
                        f"{tower} max_length differs",
                    )
            real_keys = {k for k in real.get_sd() if ".transformer." in k or k.endswith("logit_scale")}
            fake_keys = set(fake.get_sd())
            expect(real_keys == fake_keys, f"state-dict keys differ: {sorted(real_keys ^ fake_keys)[:6]}")
            note.append(
                f"{type(real.cond_stage_model).__name__}: same keys, tokenizers at "
                f"{[getattr(real.tokenizer, t).max_length for t in ('clip_l', 'clip_g') if hasattr(real.tokenizer, t)]}"
            )
            del real, fake

    with report.check("standin: CLIP cloning and patcher patches") as note:
        for sd_module in (real_sd, fake_sd):
            clip = sd_module.load_text_encoder_state_dicts(
                [sd15 if sd_module is real_sd else {k: v.float() for k, v in sd15.items()}],
                clip_type=sd_module.CLIPType.STABLE_DIFFUSION,
            )
            key = "clip_l.transformer.text_model.encoder.layers.0.mlp.fc1.weight"
            delta = torch.ones(clip.get_sd()[key].shape)
            clip.set_tokenizer_option("clip_l_min_length", 3)
            clip.clip_layer(-2)
            accepted = clip.add_patches({key: ("diff", (delta,)), "no.such.weight": ("diff", (delta,))}, 0.5, 0.9)
            expect(accepted == [key], f"add_patches returned {accepted}")
            clone = clip.clone()
            expect(
                clone.cond_stage_model is clip.cond_stage_model and clone.tokenizer is clip.tokenizer,
                "clone copies the model",
            )
            expect(
                clone.layer_idx == -2 and clone.tokenizer_options == {"clip_l_min_length": 3},
                "clone loses layer / options",
            )
            expect(clone.patcher.patches[key] == clip.patcher.patches[key], "clone changes the patches")
            expect(clone.patcher.patches[key] is not clip.patcher.patches[key], "clone shares the patch list")
            entries = clip.get_key_patches()[key]
            expect(len(entries) == 2 and len(entries[1]) == 5, f"get_key_patches entry {len(entries)}")
            strength_patch, value, strength_model, offset, function = entries[1]
            expect((strength_patch, strength_model, offset, function) == (0.5, 0.9, None, None), "patch tuple differs")
            expect(torch.equal(entries[0][0].float(), clip.get_sd()[key].float()), "original weight differs")
            before = clip.get_sd()[key].float().clone()
            clip.encode_from_tokens(clip.tokenize("a cat"))
            if sd_module is real_sd:  # ComfyUI leaves the loaded model patched in place
                key_patches = clip.get_key_patches()
                expect(torch.equal(key_patches[key][0][0].float(), before), "get_key_patches lost the original")
            del clip, clone
        note.append("clone shares the model, copies patches, layer and options; patch tuples and originals agree")

    with report.check("standin: CONDITIONING format and encoding (SD1 layers, SDXL recipes, weights, chunks)") as note:
        from longclip_diffusers.comfyui.clip_state_dicts import stretched_comfy_state_dict

        stretched = [stretched_comfy_state_dict(sd15), stretched_comfy_state_dict(bigg)]
        for state_dicts in ([stretched[0]], stretched):
            real = real_sd.load_text_encoder_state_dicts(state_dicts, clip_type=real_sd.CLIPType.STABLE_DIFFUSION)
            towers = comfy_towers(real.get_sd())
            fake = fake_sd.load_text_encoder_state_dicts(
                [{k: v.float() for k, v in towers[t].items()} for t in ("clip_l", "clip_g") if t in towers]
            )
            if len(state_dicts) == 1:
                cases = [(layer, prompt) for layer in (None, -2, -1000) for prompt in (prompts[1], prompts[2])]
            else:  # real-size bigG is slow on a CPU: each layer choice once
                cases = [(None, prompts[1]), (-2, prompts[2]), (-1000, prompts[3])]
            for layer, prompt in cases:
                outs = []
                for clip in (real, fake):
                    clip = clip.clone()
                    if layer is not None:
                        clip.clip_layer(layer)
                    outs.append(clip.encode_from_tokens_scheduled(clip.tokenize(prompt), add_dict={"width": 8}))
                (real_out,), (fake_out,) = outs
                expect(isinstance(real_out, list) and len(real_out) == 2, "CONDITIONING entry is not [cond, extras]")
                expect(
                    set(real_out[1]) == set(fake_out[1]) == {"pooled_output", "width"}, f"extras {set(real_out[1])}"
                )
                close(fake_out[0], real_out[0], what="cond")
                close(fake_out[1]["pooled_output"], real_out[1]["pooled_output"], what="pooled")
            note.append(
                f"{type(real.cond_stage_model).__name__}: cond {tuple(real_out[0].shape)} agrees at layers {sorted({str(c[0]) for c in cases})}"
            )
            del real, fake

    with report.check(
        "standin: Flux.1 and SD3 CLIPs (families, tower sizing, CLIP tokens, pooled, SD3's CLIP rows)"
    ) as note:
        from longclip_diffusers.comfyui.clip_state_dicts import stretched_comfy_state_dict

        t5 = load_file(files["t5"])
        clip_l = stretched_comfy_state_dict(load_file(files["clip_l"]))
        for kind, state_dicts in (("FLUX", [clip_l, t5]), ("SD3", [clip_l, stretched_comfy_state_dict(bigg), t5])):
            real = real_sd.load_text_encoder_state_dicts(state_dicts, clip_type=real_sd.CLIPType[kind])
            fake = fake_sd.load_text_encoder_state_dicts(
                [{k: v.float() for k, v in sd.items()} for sd in state_dicts], clip_type=fake_sd.CLIPType[kind]
            )
            expect(type(fake.cond_stage_model).__name__ in type(real.cond_stage_model).__name__, f"{kind} family")
            for tower in ("clip_l", "clip_g"):
                if hasattr(real.tokenizer, tower):
                    expect(
                        getattr(real.tokenizer, tower).max_length == getattr(fake.tokenizer, tower).max_length == 248,
                        tower,
                    )
            prompt = prompts[3]
            real_tokens, fake_tokens = real.tokenize(prompt), fake.tokenize(prompt)
            for key in ("l", "g"):
                if key in real_tokens:
                    expect(real_tokens[key] == fake_tokens[key], f"{kind} {key} tokens differ")
            ((real_cond, real_extras),) = real.encode_from_tokens_scheduled(real_tokens)
            ((fake_cond, fake_extras),) = fake.encode_from_tokens_scheduled(fake_tokens)
            close(fake_extras["pooled_output"], real_extras["pooled_output"], what=f"{kind} pooled")
            if kind == "SD3":
                rows = len(real_tokens["l"]) * 248
                close(fake_cond[:, :rows], real_cond[:, :rows], what="SD3 CLIP rows")
            note.append(
                f"{type(real.cond_stage_model).__name__}: pooled {tuple(real_extras['pooled_output'].shape)} agrees"
            )
            del real, fake

    with report.check("standin: model folders") as note:
        root = Path(tempfile.mkdtemp(dir=folders["clip"].parent.parent))
        (root / "a" / "sub").mkdir(parents=True)
        (root / "b").mkdir()
        for name in ("a/x.safetensors", "a/sub/y.pt", "b/z.sft", "a/notes.txt"):
            (root / name).write_bytes(b"")
        tables = []
        for module in (folder_paths, standin_folders):
            saved = dict(module.folder_names_and_paths)
            module.folder_names_and_paths["probe"] = (
                [str(root / "a"), str(root / "b")],
                folder_paths.supported_pt_extensions,
            )
            with contextlib.suppress(AttributeError):
                module.filename_list_cache.clear()
            tables.append(
                (
                    module.get_filename_list("probe"),
                    module.get_full_path("probe", "sub/y.pt"),
                    module.get_folder_paths("probe"),
                )
            )
            module.folder_names_and_paths.clear()
            module.folder_names_and_paths.update(saved)
        expect(tables[0] == tables[1], f"{tables[0]} != {tables[1]}")
        note.append(f"lists {tables[0][0]}")


# --- part 2: the nodes in ComfyUI -------------------------------------------------------------


class WarningLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def write_lora(path: Path, prefix: str, shapes: dict, seed: int) -> None:
    """A kohya-style LoRA of rank 4 on the q projection and fc1 of the first two layers."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    lora = {}
    for layer in (0, 1):
        for module, key in (("self_attn_q_proj", "self_attn.q_proj"), ("mlp_fc1", "mlp.fc1")):
            out_dim, in_dim = shapes[f"text_model.encoder.layers.{layer}.{key}.weight"]
            name = f"{prefix}_text_model_encoder_layers_{layer}_{module}"
            lora[f"{name}.lora_up.weight"] = 0.05 * torch.randn(out_dim, 4, generator=generator)
            lora[f"{name}.lora_down.weight"] = 0.05 * torch.randn(4, in_dim, generator=generator)
            lora[f"{name}.alpha"] = torch.tensor(4.0)
    save_file(lora, path)


def check_nodes(report: Report, nodes, folder_paths, files, folders, workdir: Path):
    import comfy.hooks
    import comfy.sd
    import torch
    from comfy_extras.nodes_clip_sdxl import CLIPTextEncodeSDXL
    from comfy_extras.nodes_hooks import CreateHookLora, SetClipHooks
    from safetensors.torch import load_file, save_file

    from longclip_diffusers import IncompatibleEncoderError, load_text_encoder
    from longclip_diffusers.comfyui.conditioning import sd15_conditioning, sdxl_conditioning
    from longclip_diffusers.io.export import prefixed_state_dict

    ours = {
        name: nodes.NODE_CLASS_MAPPINGS[name]()
        for name in (
            "LongCLIPTextEncoderLoader",
            "LongCLIPIntoCLIP",
            "LongCLIPTextEncodeSD15",
            "LongCLIPTextEncodeSDXL",
        )
    }
    loader, into, sd15_node, sdxl_node = ours.values()
    text_encode = nodes.CLIPTextEncode()
    clip_loader, dual_loader, lora_loader, set_last_layer = (
        nodes.CLIPLoader(),
        nodes.DualCLIPLoader(),
        nodes.LoraLoader(),
        nodes.CLIPSetLastLayer(),
    )
    warnings = WarningLog()
    logging.getLogger().addHandler(warnings)

    def encode(clip, text):
        ((cond, extras),) = text_encode.encode(clip, text)[0]
        return cond, extras

    def rows(clip, tower="clip_l"):
        return clip.get_sd()[f"{tower}.transformer.text_model.embeddings.position_embedding.weight"].shape[0]

    with report.check(
        "nodes: all four register under conditioning/longclip through ComfyUI's custom-node loader"
    ) as note:
        for name, node in ours.items():
            expect(type(node).CATEGORY == "conditioning/longclip", f"{name} category")
        note.append(", ".join(ours))

    loaded = {}
    with report.check(
        "nodes: the loader takes every file form, offline, with ComfyUI's tokenizer (findings 2, 3)"
    ) as note:
        sd15_dir = workdir / "diffusers-sd15"
        if not (sd15_dir / "model_index.json").exists():
            from longclip_diffusers import save_text_encoder

            encoder = load_text_encoder(files["sd15_clip_l"], stretch=False)
            save_text_encoder(encoder, sd15_dir / "text_encoder")
            import comfy.sd1_clip

            shutil.copytree(Path(comfy.sd1_clip.__file__).parent / "sd1_tokenizer", sd15_dir / "tokenizer")
            (sd15_dir / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
            del encoder
        cases = [
            ("longclip-L.pt", "", "clip_l", "longclip", 768),
            ("sd15_clip_l.safetensors", "", "clip_l", "sd15", 768),
            ("clip_l.safetensors", "", "clip_l", None, 768),
            ("sdxl_clip_g.safetensors", "", "clip_g", "bigg", 1280),
            ("comfy_clip_l_clip_g.safetensors", "", "clip_l", None, 768),
            ("sdxl_text_encoders_only.safetensors", "", "clip_g", None, 1280),
            ("sdxl_text_encoders_only.safetensors", "", "clip_l", None, 768),
            ("(path or hub id below)", str(sd15_dir), "clip_l", None, 768),
            ("longclip-B.pt", "", "clip_l", "longclip_b", 512),
        ]
        for choice, typed, slot, keep_as, width in cases:
            (encoder,) = loader.load(choice, typed, slot)
            expect(encoder.positions == 248 and encoder.tokenizer.model_max_length == 248, f"{choice}: not 248")
            expect(encoder.width == width, f"{choice} {slot}: width {encoder.width}")
            expect(
                "sd1_tokenizer" in str(encoder.tokenizer.name_or_path) or typed,
                f"{choice}: tokenizer {encoder.tokenizer.name_or_path}",
            )
            if keep_as:
                loaded[keep_as] = encoder
            else:
                del encoder
        note.append(f"{len(cases)} forms at 248 positions, HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')}")

    with report.check(
        "nodes: an SDXL checkpoint's OpenCLIP-layout bigG loads as ComfyUI reads it (key map, GELU)"
    ) as note:
        (ckpt_g,) = loader.load("sdxl_text_encoders_only.safetensors", "", "clip_g")
        prefix = "conditioner.embedders.1.model."
        openclip = {
            k[len(prefix) :]: v for k, v in load_file(files["sdxl_checkpoint"]).items() if k.startswith(prefix)
        }
        comfy_g = comfy.sd.load_text_encoder_state_dicts([openclip], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION)
        del openclip
        # fewer than 20 tokens: rows 0-19 of the stretched table are the original's, and attention is causal
        prompt = "a red cat on a grassy hill"
        ((cond, extras),) = comfy_g.encode_from_tokens_scheduled(comfy_g.tokenize(prompt))
        count = len(ckpt_g.tokenizer(prompt).input_ids)
        ids = ckpt_g.tokenizer(prompt, padding="max_length", max_length=248, return_tensors="pt").input_ids
        with torch.no_grad():
            out = ckpt_g.model(ids, output_hidden_states=True)
        expect(ckpt_g.model.config.hidden_act == "gelu", ckpt_g.model.config.hidden_act)
        note.append(close(out.hidden_states[-2][:, :count], cond[:, :count], tol=2e-3, what="penultimate layer"))
        note.append(close(out.text_embeds, extras["pooled_output"], tol=2e-3, what="pooled"))
        del ckpt_g, comfy_g

    long_l = loaded["longclip"]
    (stock_sd15,) = clip_loader.load_clip("sd15_clip_l.safetensors", "stable_diffusion")

    with report.check("nodes: into CLIP for SD1.5 equals ComfyUI's own CLIPLoader on the Long-CLIP file") as note:
        (long_sd15,) = into.apply(stock_sd15, long_l)
        expect(rows(long_sd15) == 248 and long_sd15.tokenizer.clip_l.max_length == 248, "not 248")
        save_file(
            {k: v.to(torch.float16) for k, v in prefixed_state_dict(long_l.model).items()},
            folders["clip"] / "longclip-L-comfy.safetensors",
        )
        (direct,) = clip_loader.load_clip("longclip-L-comfy.safetensors", "stable_diffusion")
        prompt = words(200)
        cond, extras = encode(long_sd15, prompt)
        want, want_extras = encode(direct, prompt)
        expect(cond.shape == (1, 248, 768), f"cond {tuple(cond.shape)}")
        note.append(close(cond, want, tol=1e-5, what="cond"))
        note.append(close(extras["pooled_output"], want_extras["pooled_output"], tol=1e-5, what="pooled"))
        del direct

    with report.check("nodes: LoraLoader before into CLIP keeps the LoRA (SD1.5 clip_l; finding 1)") as note:
        write_lora(folders["loras"] / "clip_l_lora.safetensors", "lora_te", clip_text_shapes(768, 12, 77, False), 11)
        (_, lora_clip) = lora_loader.load_lora(None, stock_sd15, "clip_l_lora.safetensors", 0.0, 1.0)
        (kept,) = into.apply(lora_clip, long_l)
        (_, after) = lora_loader.load_lora(None, long_sd15, "clip_l_lora.safetensors", 0.0, 1.0)
        prompt = words(150)
        with_lora, _ = encode(kept, prompt)
        without, _ = encode(long_sd15, prompt)
        lora_after, _ = encode(after, prompt)
        change = (with_lora - without).abs().max().item()
        expect(change > 1e-3, f"the LoRA changes nothing ({change})")
        note.append(f"LoRA changes cond by up to {change:.3g}")
        note.append(close(with_lora, lora_after, tol=1e-5, what="LoRA before == LoRA after"))

    with report.check(
        "nodes: the SD1.5 encode node is CLIPTextEncode on into CLIP: chunks past 248 with a warning, weights, embedding, clip-skip (findings 5, 6)"
    ) as note:
        torch.save({"string_to_param": {"*": 0.02 * torch.randn(2, 768)}}, folders["embeddings"] / "longemb.pt")
        cases = {
            "chunked": words(300),
            "weighted": "a (red:1.5) harbor, ((blue)) boats",
            "embedding": "a photo of embedding:longemb in a harbor",
        }
        for name, prompt in cases.items():
            warnings.lines.clear()
            ((cond, extras),) = sd15_node.encode(long_l, prompt, 0)[0]
            want, want_extras = encode(long_sd15, prompt)
            close(cond, want, tol=1e-5, what=name)
            close(extras["pooled_output"], want_extras["pooled_output"], tol=1e-5, what=f"{name} pooled")
            if name == "chunked":
                expect(cond.shape == (1, 496, 768), f"chunked {tuple(cond.shape)}")
                expect(
                    any("2 chunks of 248 tokens" in line for line in warnings.lines),
                    f"no chunk warning: {warnings.lines}",
                )
                note.append(f"300 words -> {tuple(cond.shape)} with the warning")
        plain = sd15_node.encode(long_l, "a red harbor, blue boats", 0)[0][0][0]
        weighted = sd15_node.encode(long_l, cases["weighted"], 0)[0][0][0]
        expect(not torch.allclose(plain, weighted), "weighting changes nothing")
        no_embedding = sd15_node.encode(long_l, "a photo of in a harbor", 0)[0][0][0]
        with_embedding = sd15_node.encode(long_l, cases["embedding"], 0)[0][0][0]
        expect(
            not torch.allclose(no_embedding, with_embedding[:, : no_embedding.shape[1]]),
            "the embedding changes nothing",
        )
        (skipped_clip,) = set_last_layer.set_last_layer(long_sd15, -2)
        skipped = sd15_node.encode(long_l, cases["weighted"], 1)[0][0][0]
        note.append(
            close(
                skipped, encode(skipped_clip, cases["weighted"])[0], tol=1e-5, what="clip_skip=1 == Set Last Layer -2"
            )
        )
        note.append("weighted, embedding:name identical to CLIPTextEncode")

    with report.check(
        "nodes: ComfyUI's encoding of Long-CLIP equals the project's diffusers read-out (SD1.5)"
    ) as note:
        prompt = words(150)
        for skip in (0, 1):
            ((cond, extras),) = sd15_node.encode(long_l, prompt, skip)[0]
            ((want, want_extras),) = sd15_conditioning(long_l, prompt, skip or None)
            note.append(close(cond, want, tol=2e-3, what=f"clip_skip={skip} cond"))
            close(extras["pooled_output"], want_extras["pooled_output"], tol=2e-3, what="pooled")

    with report.check("nodes: width checks in the encode nodes (finding 4)") as note:
        try:
            sd15_node.encode(loaded["longclip_b"], "a cat", 0)
        except IncompatibleEncoderError as exc:
            expect("512 wide" in str(exc) and "Long-CLIP-B" in str(exc), str(exc))
            note.append(f"Long-CLIP-B in SD1.5: {exc}")
        else:
            raise AssertionError("Long-CLIP-B accepted by the SD1.5 node")
        try:
            sdxl_node.encode(long_l, long_l, 1024, 1024, 0, 0, 1024, 1024, "a cat", "a cat", "standard")
        except IncompatibleEncoderError as exc:
            expect("clip_g slot reads 1280" in str(exc), str(exc))
            note.append("Long-CLIP-L in clip_g refused")
        else:
            raise AssertionError("Long-CLIP-L accepted in the clip_g slot")

    with report.check("nodes: a 1280-wide encoder in the clip_l slot is named a clip_g encoder (finding 7)") as note:
        try:
            into.apply(stock_sd15, loaded["bigg"])
        except IncompatibleEncoderError as exc:
            expect("this is a clip_g encoder" in str(exc), str(exc))
            note.append(str(exc))
        else:
            raise AssertionError("bigG accepted as clip_l")

    with report.check("nodes: hooks and patches on replaced position tables are refused, not dropped") as note:
        hooks = CreateHookLora().create_hook("clip_l_lora.safetensors", 0.0, 1.0)[0]
        (hooked,) = SetClipHooks().apply_hooks(stock_sd15, False, False, hooks)
        for clip, what in ((hooked, "hooks"), (None, "position patch")):
            if clip is None:
                clip = stock_sd15.clone()
                clip.add_patches(
                    {
                        "clip_l.transformer.text_model.embeddings.position_embedding.weight": (
                            "diff",
                            (torch.ones(77, 768),),
                        )
                    }
                )
            try:
                into.apply(clip, long_l)
            except IncompatibleEncoderError as exc:
                expect("after" in str(exc), str(exc))
                note.append(f"{what}: {str(exc)[:90]}...")
            else:
                raise AssertionError(f"{what} accepted")
        del hooked
    del stock_sd15, long_sd15, kept, after, lora_clip
    gc.collect()

    (stock_sdxl,) = dual_loader.load_clip("clip_l.safetensors", "sdxl_clip_g.safetensors", "sdxl")
    with report.check(
        "nodes: into CLIP for SDXL stretches clip_g; LoRA on clip_g kept; the SDXL node is CLIPTextEncodeSDXL on it"
    ) as note:
        (long_sdxl,) = into.apply(stock_sdxl, long_l)
        expect(rows(long_sdxl) == rows(long_sdxl, "clip_g") == 248, "towers not at 248")
        expect(
            long_sdxl.tokenizer.clip_l.max_length == long_sdxl.tokenizer.clip_g.max_length == 248,
            "tokenizers not at 248",
        )
        cond, extras = encode(long_sdxl, words(150))
        expect(cond.shape == (1, 248, 2048) and extras["pooled_output"].shape == (1, 1280), f"{tuple(cond.shape)}")
        write_lora(folders["loras"] / "clip_g_lora.safetensors", "lora_te2", clip_text_shapes(1280, 32, 77, False), 12)
        (_, lora_clip) = lora_loader.load_lora(None, stock_sdxl, "clip_g_lora.safetensors", 0.0, 1.0)
        (kept,) = into.apply(lora_clip, long_l)
        (_, after) = lora_loader.load_lora(None, long_sdxl, "clip_g_lora.safetensors", 0.0, 1.0)
        with_lora, _ = encode(kept, words(150))
        change = (with_lora - cond).abs().max().item()
        expect(change > 1e-3, f"the clip_g LoRA changes nothing ({change})")
        note.append(
            close(
                with_lora,
                encode(after, words(150))[0],
                tol=1e-5,
                what=f"clip_g LoRA (changes {change:.2g}) before == after",
            )
        )
        del kept, after, lora_clip
        gc.collect()
        (bigg,) = loader.load("sdxl_clip_g.safetensors", "", "clip_g")
        sizes = (1152, 896, 16, 8, 1024, 768)
        text_g, text_l = words(300, 1), "a harbor at (dawn:1.2)"
        warnings.lines.clear()
        ((ours_cond, ours_extras),) = sdxl_node.encode(long_l, bigg, *sizes, text_g, text_l, "standard")[0]
        ((want, want_extras),) = CLIPTextEncodeSDXL.execute(long_sdxl, *sizes, text_g, text_l).result[0]
        expect(ours_cond.shape == (1, 496, 2048), f"{tuple(ours_cond.shape)}")
        expect(any("chunks" in line for line in warnings.lines), "no chunk warning")
        note.append(close(ours_cond, want, tol=1e-5, what="SDXL node == CLIPTextEncodeSDXL (2 chunks, weights)"))
        expect(
            {k: v for k, v in ours_extras.items() if k != "pooled_output"}
            == {k: v for k, v in want_extras.items() if k != "pooled_output"},
            "size fields differ",
        )
        close(ours_extras["pooled_output"], want_extras["pooled_output"], tol=1e-5, what="pooled")

    with report.check("nodes: the SDXL recipes on ComfyUI equal the project's diffusers read-outs") as note:
        prompt = words(150, 2)
        for recipe in ("standard", "longclip"):
            ((cond, extras),) = sdxl_node.encode(long_l, bigg, 1024, 1024, 0, 0, 1024, 1024, prompt, prompt, recipe)[0]
            ((want, want_extras),) = sdxl_conditioning(long_l, bigg, prompt, prompt, recipe=recipe)
            note.append(close(cond, want, tol=2e-3, what=f"{recipe} cond"))
            close(extras["pooled_output"], want_extras["pooled_output"], tol=2e-3, what="pooled")
    del stock_sdxl, long_sdxl, bigg
    loaded.pop("bigg", None)
    gc.collect()

    with report.check("nodes: Flux.1 CLIP gets a 248-token clip_l, T5 untouched") as note:
        (stock_flux,) = dual_loader.load_clip("clip_l.safetensors", "t5xxl_small.safetensors", "flux")
        (long_flux,) = into.apply(stock_flux, long_l)
        expect(
            type(long_flux.cond_stage_model).__name__.startswith("FluxClipModel"),
            type(long_flux.cond_stage_model).__name__,
        )
        expect(rows(long_flux) == 248 and long_flux.tokenizer.clip_l.max_length == 248, "clip_l not at 248")
        t5 = {k: v for k, v in stock_flux.get_sd().items() if k.startswith("t5xxl.")}
        rebuilt = long_flux.get_sd()
        expect(all(torch.equal(v, rebuilt[k]) for k, v in t5.items()), "T5 weights changed")
        prompt = words(150)
        cond, extras = encode(long_flux, prompt)
        stock_cond, _ = encode(stock_flux, prompt)
        note.append(close(cond, stock_cond, tol=0, what="T5 cond"))
        changed = prompt.split()
        changed[120] = "dragon"
        _, changed_extras = encode(long_flux, " ".join(changed))
        expect(
            not torch.allclose(extras["pooled_output"], changed_extras["pooled_output"]),
            "a word at token ~150 does not reach the pooled vector",
        )
        note.append(f"pooled {tuple(extras['pooled_output'].shape)} reads word 120")
        del stock_flux, long_flux

    with report.check("nodes: SD3 CLIP gets 248-token clip_l and clip_g, T5 untouched") as note:
        stock_sd3 = comfy.sd.load_clip(
            [str(files["clip_l"]), str(files["clip_g"]), str(files["t5"])],
            embedding_directory=folder_paths.get_folder_paths("embeddings"),
            clip_type=comfy.sd.CLIPType.SD3,
        )
        (long_sd3,) = into.apply(stock_sd3, long_l)
        expect(rows(long_sd3) == rows(long_sd3, "clip_g") == 248, "towers not at 248")
        expect(
            long_sd3.tokenizer.clip_l.max_length == long_sd3.tokenizer.clip_g.max_length == 248,
            "tokenizers not at 248",
        )
        t5 = {k: v for k, v in stock_sd3.get_sd().items() if k.startswith("t5xxl.")}
        rebuilt = long_sd3.get_sd()
        expect(all(torch.equal(v, rebuilt[k]) for k, v in t5.items()), "T5 weights changed")
        cond, extras = encode(long_sd3, words(150))
        note.append(f"cond {tuple(cond.shape)}, pooled {tuple(extras['pooled_output'].shape)}")
        del stock_sd3, long_sd3
    logging.getLogger().removeHandler(warnings)


# --- the example workflows ------------------------------------------------------------------


def widget_names(node_class) -> list[tuple[str, bool]]:
    """``(name, has_control_widget)`` of the inputs the frontend shows as widgets, in order."""
    spec = node_class.INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, declared in spec.get(section, {}).items():
            kind = declared[0]
            options = declared[1] if len(declared) > 1 else {}
            if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                control = kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed"))
                out.append((name, bool(control)))
    return out


def workflow_to_prompt(workflow: dict, mappings: dict) -> dict:
    """The API prompt the frontend queues for a saved workflow."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        cls = mappings.get(node["type"])
        expect(cls is not None, f"node type {node['type']} is not registered")
        inputs = {}
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                _, source, source_slot, _, _, kind = links[slot["link"]]
                inputs[slot["name"]] = [str(source), source_slot]
        values = list(node.get("widgets_values", []))
        names = widget_names(cls)
        needed = sum(1 + control for _, control in names)
        expect(len(values) == needed, f"{node['type']} #{node['id']}: {len(values)} widget values, {needed} widgets")
        for name, control in names:
            value = values.pop(0)
            if control:
                values.pop(0)
            inputs.setdefault(name, value)
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def check_workflows(report: Report, nodes, folder_paths, workdir: Path):
    """Each workflow, as the frontend queues it, through ComfyUI's prompt validator; the model
    files it names are empty placeholders in a folder searched after the real ones."""
    import execution

    placeholders = workdir / "placeholders"
    placeholders.mkdir(exist_ok=True)
    for directories, _ in folder_paths.folder_names_and_paths.values():
        if str(placeholders) not in directories:
            directories.append(str(placeholders))
    with contextlib.suppress(AttributeError):
        folder_paths.filename_list_cache.clear()

    for name in WORKFLOWS:
        with report.check(f"workflows: {name}.json loads and validates in ComfyUI") as note:
            workflow = json.loads((HERE / "workflows" / f"{name}.json").read_text())
            for node in workflow["nodes"]:
                for value in node.get("widgets_values", []):
                    if isinstance(value, str) and value.endswith((".safetensors", ".pt", ".ckpt")):
                        placeholder = placeholders / value
                        if not placeholder.exists():
                            placeholder.write_bytes(b"")
            prompt = workflow_to_prompt(workflow, nodes.NODE_CLASS_MAPPINGS)
            valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt("check", prompt, None))
            expect(valid, f"{error} {json.dumps(node_errors)[:600]}")
            kinds = sorted({node["type"] for node in workflow["nodes"]})
            note.append(f"{len(workflow['nodes'])} nodes ({', '.join(kinds)})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="keep the model files here (default: a temporary folder)")
    parser.add_argument("--part", choices=("all", "standin", "nodes", "workflows"), default="all")
    args = parser.parse_args(argv)
    comfyui = os.environ.get("COMFYUI_DIR")
    if not comfyui or not (Path(comfyui) / "comfy" / "sd.py").is_file():
        print("set COMFYUI_DIR to a ComfyUI checkout (the folder holding main.py and comfy/)", file=sys.stderr)
        return 2
    comfyui_dir = Path(comfyui).resolve()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="longclip-comfyui-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["LONGCLIP_DIFFUSERS_CACHE"] = str(workdir / "cache")

    nodes, folder_paths, version = import_comfyui(comfyui_dir)
    print(
        f"ComfyUI {version} at {comfyui_dir} (stand-ins mirror {MIRRORED_VERSION}); work folder {workdir}", flush=True
    )
    if version != MIRRORED_VERSION:
        print(
            f"NOTE ComfyUI {version} is not the {MIRRORED_VERSION} the stand-ins name: update their docstrings if all passes"
        )
    import torch
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, CPU", flush=True)
    folders = point_model_folders(folder_paths, workdir / "models")
    shrink_t5()
    # comfy_extras nodes whose optional dependencies are missing only log that they are skipped
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    finally:
        logging.disable(logging.NOTSET)
    custom = workdir / "custom_nodes" / "longclip_diffusers_nodes"
    custom.parent.mkdir(exist_ok=True)
    if not custom.exists():
        custom.symlink_to(HERE, target_is_directory=True)
    before = set(nodes.NODE_CLASS_MAPPINGS)
    expect(asyncio.run(nodes.load_custom_node(str(custom))), "ComfyUI could not load the custom nodes")
    added = sorted(set(nodes.NODE_CLASS_MAPPINGS) - before)
    print(f"ComfyUI loaded the custom nodes: {', '.join(added)}", flush=True)

    report = Report()
    started = time.monotonic()
    files = write_model_files(folders, workdir)
    print(f"model files ready ({time.monotonic() - started:.0f} s)", flush=True)
    if args.part in ("all", "standin"):
        standin, standin_folders = load_standin(workdir, comfyui_dir)
        check_standins(report, standin, standin_folders, folder_paths, files, folders, comfyui_dir)
    if args.part in ("all", "nodes"):
        check_nodes(report, nodes, folder_paths, files, folders, workdir)
    if args.part in ("all", "workflows"):
        check_workflows(report, nodes, folder_paths, workdir)
    print(f"{report.passed} passed, {len(report.failed)} failed in {time.monotonic() - started:.0f} s", flush=True)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
