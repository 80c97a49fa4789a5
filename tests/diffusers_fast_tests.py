"""Run diffusers' own fast tests for SD, SDXL, SD3 and Flux.1 pipelines against pipelines patched
with ``apply_long_clip``, and stock, and compare the outcomes test by test.

    DIFFUSERS_DIR=/path/to/diffusers python tests/diffusers_fast_tests.py --stand-ins \\
        --json diffusers-fast-tests.json [--files tests/pipelines/flux/test_pipeline_flux.py] [-- -k encode]

``DIFFUSERS_DIR`` is a checkout (or an export) of huggingface/diffusers; its ``tests/`` are run
with the *installed* diffusers, the one this package supports: this module, loaded into pytest
with ``-p``, imports diffusers before diffusers' ``tests/conftest.py`` puts the checkout's
``src/`` on ``sys.path``. The tests need ``parameterized`` and ``requests_mock`` importable.

Patched mode (this module as a pytest plugin, ``LONGCLIP_DIFFUSERS_PATCH=1``): every SD / SDXL /
SD3 / Flux pipeline class's ``__init__`` is wrapped so that a pipeline with CLIP text encoders
leaves the constructor patched, as the README tells users to re-apply after ``from_pipe`` or
``from_pretrained``: a 77-position CLIP-L slot gets a stretched twin of its own encoder as the
"Long-CLIP" source (the fast tests' encoders are random anyway), a slot with 248 positions
already (a pipeline derived from a patched one) is applied without a source. Pipelines without a
CLIP encoder (diffusers builds some with ``text_encoder=None``) stay stock. Each test records
the kinds it patched (junit property ``longclip_patched``).

``--stand-ins``: the fast tests load two tokenizers (and T5's config) from the hub,
``hf-internal-testing/tiny-random-clip`` and ``hf-internal-testing/tiny-random-t5``. Where the
hub cannot be reached, this writes look-alikes built in code into a private hub cache (a CLIP
BPE tokenizer over the tiny vocabulary of :mod:`longclip_diffusers.tiny`, 77 tokens, ids under the
tests' vocabulary of 1000; a T5 config of the tiny-random-t5 shape and a unigram tokenizer) and
runs offline. Tests that compare pixels with hard-coded slices then fail in both modes; the
comparison between the modes is what this script reports.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

PATCH_ENV = "LONGCLIP_DIFFUSERS_PATCH"
REPO = Path(__file__).resolve().parents[1]

#: The fast-test files run by default: text-to-image and img2img (which holds the SDXL refiner's
#: tests) of each family, inpainting of SD, SDXL and Flux.
DEFAULT_FILES = (
    "tests/pipelines/stable_diffusion/test_stable_diffusion.py",
    "tests/pipelines/stable_diffusion/test_stable_diffusion_img2img.py",
    "tests/pipelines/stable_diffusion/test_stable_diffusion_inpaint.py",
    "tests/pipelines/stable_diffusion_xl/test_stable_diffusion_xl.py",
    "tests/pipelines/stable_diffusion_xl/test_stable_diffusion_xl_img2img.py",
    "tests/pipelines/stable_diffusion_xl/test_stable_diffusion_xl_inpaint.py",
    "tests/pipelines/stable_diffusion_3/test_pipeline_stable_diffusion_3.py",
    "tests/pipelines/stable_diffusion_3/test_pipeline_stable_diffusion_3_img2img.py",
    "tests/pipelines/stable_diffusion_3/test_pipeline_stable_diffusion_3_inpaint.py",
    "tests/pipelines/flux/test_pipeline_flux.py",
    "tests/pipelines/flux/test_pipeline_flux_img2img.py",
    "tests/pipelines/flux/test_pipeline_flux_inpaint.py",
)
STAND_IN_REPOS = ("hf-internal-testing/tiny-random-clip", "hf-internal-testing/tiny-random-t5")
_PREFIXES = ("StableDiffusion", "Flux")

# ---------------------------------------------------------------------------------------------
# pytest plugin side


_state = threading.local()
_patched_in_test: list[str] = []


def pytest_configure(config) -> None:
    import diffusers  # noqa: F401  (the installed one, before diffusers' conftest.py adds the checkout's src/)

    if os.environ.get(PATCH_ENV) == "1":
        for cls in _pipeline_classes():
            if "__init__" in vars(cls):
                cls.__init__ = _patching_init(cls.__init__)


def pytest_report_header(config) -> list[str]:
    import diffusers

    mode = "patched with apply_long_clip" if os.environ.get(PATCH_ENV) == "1" else "stock"
    return [f"longclip-diffusers: diffusers {diffusers.__version__} from {diffusers.__file__}, pipelines {mode}"]


def pytest_runtest_setup(item) -> None:
    _patched_in_test.clear()


def pytest_runtest_teardown(item) -> None:
    item.user_properties.append(("longclip_patched", ",".join(sorted(set(_patched_in_test)))))


def _pipeline_classes() -> list[type]:
    import diffusers

    classes = []
    for name in dir(diffusers):
        if not (name.startswith(_PREFIXES) and name.endswith("Pipeline")):
            continue
        try:
            cls = getattr(diffusers, name)
        except Exception:  # an optional dependency the class needs is missing: not runnable anyway
            continue
        if isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline):
            classes.append(cls)
    return classes


def _patching_init(init):
    @functools.wraps(init)  # diffusers reads the signature of __init__ to load components
    def patched_init(self, *args, **kwargs):
        depth = getattr(_state, "depth", 0)
        _state.depth = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            _state.depth = depth
        if depth == 0:  # the outermost constructor: the pipeline is complete
            _apply(self)

    return patched_init


def _apply(pipe) -> None:
    from longclip_diffusers import IncompatibleEncoderError, apply_long_clip, fit_encoder_length
    from longclip_diffusers.drop_in.pipeline_kinds import detect_slots
    from longclip_diffusers.length.fit_length import position_limit

    try:
        slots = detect_slots(pipe)
    except IncompatibleEncoderError:
        return  # no CLIP text encoder (or tokenizer): a stock pipeline, as apply_long_clip refuses
    source = None
    if slots.long_clip_slot:
        encoder = getattr(pipe, slots.long_clip_slot)
        if position_limit(encoder) < 248:
            source = fit_encoder_length(encoder, 248)
    apply_long_clip(pipe, source)
    _patched_in_test.append(slots.kind)


# ---------------------------------------------------------------------------------------------
# runner side


def write_stand_in_hub(cache: Path) -> Path:
    """Write look-alikes of :data:`STAND_IN_REPOS` into the hub cache folder ``cache``."""
    from transformers import T5Config

    from longclip_diffusers.tiny import tiny_clip_tokenizer, tiny_t5_tokenizer

    commit = "0" * 40
    for repo in STAND_IN_REPOS:
        root = cache / f"models--{repo.replace('/', '--')}"
        snapshot = root / "snapshots" / commit
        snapshot.mkdir(parents=True, exist_ok=True)
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / "main").write_text(commit)
        if repo.endswith("clip"):
            tiny_clip_tokenizer().save_pretrained(snapshot)
        else:
            # the shape of hf-internal-testing/tiny-random-t5 (its vocabulary holds the tokenizer's ids)
            T5Config(
                vocab_size=1103,
                d_model=32,
                d_ff=37,
                d_kv=8,
                num_heads=4,
                num_layers=5,
                relative_attention_num_buckets=8,
            ).save_pretrained(snapshot)
            tiny_t5_tokenizer().save_pretrained(snapshot)
    return cache


def run_mode(
    diffusers_dir: Path, files: list[str], patched: bool, work: Path, env: dict, pytest_args: list[str]
) -> dict:
    """Run the fast tests once, stock or patched; ``{test id: {"outcome", "message", "patched"}}``."""
    junit = work / f"{'patched' if patched else 'stock'}.xml"
    command = [sys.executable, "-m", "pytest", *files, "-p", "diffusers_fast_tests", "-p", "no:cacheprovider"]
    command += ["-q", "-o", "addopts=", f"--junitxml={junit}", *pytest_args]
    run_env = {**env, PATCH_ENV: "1" if patched else "0"}
    print(f"running {'patched' if patched else 'stock'}: {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=diffusers_dir, env=run_env, check=False)
    return read_junit(junit)


def read_junit(path: Path) -> dict:
    results = {}
    for case in ElementTree.parse(path).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (node.get("message") or "").strip().splitlines()[0][:300] if node.get("message") else ""
                break
        patched = ""
        for prop in case.iter("property"):
            if prop.get("name") == "longclip_patched":
                patched = prop.get("value") or ""
        results[test_id] = {"outcome": outcome, "message": message, "patched": patched}
    return results


def compare(stock: dict, patched: dict) -> dict:
    """Tests grouped by (stock outcome, patched outcome), and the differences listed."""
    groups = Counter((stock.get(t, {}).get("outcome"), patched.get(t, {}).get("outcome")) for t in stock | patched)
    differences = {
        t: {"stock": stock.get(t), "patched": patched.get(t)}
        for t in sorted(stock | patched)
        if stock.get(t, {}).get("outcome") != patched.get(t, {}).get("outcome")
    }
    return {"counts": {f"{a} -> {b}": n for (a, b), n in sorted(groups.items(), key=str)}, "differences": differences}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--diffusers-dir", type=Path, default=os.environ.get("DIFFUSERS_DIR"))
    parser.add_argument("--files", nargs="+", default=list(DEFAULT_FILES), help="fast-test files, relative to it")
    parser.add_argument("--mode", choices=("both", "stock", "patched"), default="both")
    parser.add_argument("--stand-ins", action="store_true", help="offline look-alikes of the hub tokenizers")
    parser.add_argument("--json", type=Path, help="write every outcome and the comparison here")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))  # this checkout's package, for the stand-ins and in the plugin
    if args.diffusers_dir is None or not (args.diffusers_dir / "tests" / "pipelines").is_dir():
        parser.error("point DIFFUSERS_DIR (or --diffusers-dir) at a huggingface/diffusers checkout")
    work = Path(tempfile.mkdtemp(prefix="longclip-diffusers-fast-tests-"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    if args.stand_ins:
        env["HF_HUB_CACHE"] = str(write_stand_in_hub(work / "hub"))
        env["HF_HUB_OFFLINE"] = "1"
    outcomes = {}
    for mode in ("stock", "patched"):
        if args.mode in ("both", mode):
            outcomes[mode] = run_mode(args.diffusers_dir, args.files, mode == "patched", work, env, args.pytest_args)
    report = {"files": args.files, "stand_ins": args.stand_ins, "outcomes": outcomes}
    for mode, results in outcomes.items():
        print(f"{mode}: {dict(Counter(r['outcome'] for r in results.values()))}")
    if len(outcomes) == 2:
        report["comparison"] = compare(outcomes["stock"], outcomes["patched"])
        print(json.dumps(report["comparison"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
