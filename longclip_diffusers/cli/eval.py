"""``longclip-diffusers eval``: retrieval, zero-shot classification and the effective-length
curve, each printing a table on stdout and optionally writing JSON; and ``generation``, which
scores the images of several pipelines against long prompts."""

from __future__ import annotations

import argparse

from ..constants import (
    CLASSIFICATION_DATASETS,
    CURVE_LENGTHS,
    DEFAULT_GENERATION_PIPELINES,
    DEFAULT_LONG_CLIP,
    DTYPE_NAMES,
    GENERATION_PIPELINES,
    RETRIEVAL_DATASETS,
)
from ..errors import InvalidArgumentError
from ..io.atomic import check_output_path
from .options import add_model_sources, add_sampling_options, add_tiny_random, int_at_least


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate CLIP / Long-CLIP / TULIP models: retrieval, zero-shot, length curve",
        description="Evaluate full CLIP-like models (text + vision) on the benchmarks of the "
        "Long-CLIP and TULIP papers. Text is tokenized at each model's own max length.",
    )
    tasks = parser.add_subparsers(dest="eval_command", metavar="TASK")
    tasks.required = True
    _add_task(
        tasks,
        "retrieval",
        run_retrieval,
        RETRIEVAL_DATASETS,
        "image-text retrieval R@1/5/10 in both directions",
        "Image-text retrieval recall@1/5/10, image->text and text->image.",
    )
    _add_task(
        tasks,
        "zeroshot",
        run_zeroshot,
        CLASSIFICATION_DATASETS,
        "zero-shot classification with the 80 OpenAI ImageNet templates",
        "Zero-shot top-1/top-5 accuracy: class embedding = normalised mean of the 80 OpenAI template embeddings.",
    )
    curve = _add_task(
        tasks,
        "length-curve",
        run_length_curve,
        RETRIEVAL_DATASETS,
        "R@1 as captions are cut to 10..248 tokens, several models on one plot",
        "The effective-length experiment: retrieval R@1 with captions cut to each length; "
        "writes length_curve.json and length_curve.png into --out.",
        several_models=True,
    )
    curve.add_argument("--out", required=True, metavar="DIR", help="folder for the JSON and PNG")
    curve.add_argument(
        "--lengths",
        type=int_at_least(2),
        nargs="+",
        default=list(CURVE_LENGTHS),
        metavar="N",
        help="caption lengths in tokens, start/end tokens included (default: %(default)s)",
    )
    _add_generation(tasks)


def _add_task(tasks, name, func, datasets, summary, description, several_models=False):
    parser = tasks.add_parser(name, help=summary, description=description)
    _add_model(parser, several_models)
    _add_tokenizer(parser)
    _add_dataset(parser, datasets)
    _add_common(parser, json_flag=not several_models)
    parser.set_defaults(func=func)
    return parser


def _add_model(parser: argparse.ArgumentParser, several: bool = False) -> None:
    parser.add_argument(
        "--model",
        required=True,
        action="append" if several else "store",
        metavar="SRC",
        help="full CLIP-like model: transformers CLIPModel or TULIP dir, OpenAI-layout .pt/.safetensors "
        "(e.g. longclip-L.pt; a plain CLIP file is scored at 77 tokens) or hub id"
        + (" (repeat for several models)" if several else ""),
    )


def _add_tokenizer(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokenizer",
        metavar="TOK",
        help="tokenizer folder or hub id for models that carry none (released .pt files); "
        "default: CLIP-L's from the hub",
    )


def _add_dataset(parser: argparse.ArgumentParser, datasets: tuple[str, ...]) -> None:
    parser.add_argument("--dataset", required=True, choices=datasets, help="benchmark")
    parser.add_argument("--root", required=True, metavar="DIR", help="data set folder, in its published layout")


def _add_common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    if json_flag:
        parser.add_argument("--json", metavar="OUT", help="also write the results to this file")
    parser.add_argument("--batch-size", type=int_at_least(1), default=64, metavar="N", help="(default: 64)")
    parser.add_argument(
        "--device",
        default=None,
        help="torch device (default: cuda, else mps, else cpu)",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        help="weights' dtype (default: as saved); half precision is for GPUs",
    )
    parser.add_argument(
        "--num-workers",
        type=int_at_least(0),
        default=0,
        metavar="N",
        help="image decoding processes (default: 0, in the main process)",
    )


def _check_arguments(args: argparse.Namespace) -> None:
    """What would otherwise fail after the whole evaluation: the output paths and the device."""
    from ..devices import check_device

    if getattr(args, "json", None):
        check_output_path(args.json, folder=False, flag="--json")
    if getattr(args, "out", None):
        check_output_path(args.out, folder=True, flag="--out")
    if args.device is not None:
        check_device(args.device)


def _loader_options(args: argparse.Namespace) -> dict:
    return {"batch_size": args.batch_size, "num_workers": args.num_workers}


def _load_model(args: argparse.Namespace, source: str):
    from ..devices import default_device
    from ..evaluation import load_eval_model

    return load_eval_model(
        source, tokenizer=args.tokenizer, device=args.device or default_device(), torch_dtype=args.dtype
    )


def run_retrieval(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_retrieval, load_retrieval_dataset, retrieval_table

    return _evaluate(args, load_retrieval_dataset, evaluate_retrieval, retrieval_table)


def run_zeroshot(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_zeroshot, load_classification_dataset, zeroshot_table

    return _evaluate(args, load_classification_dataset, evaluate_zeroshot, zeroshot_table)


def _evaluate(args: argparse.Namespace, load_dataset, evaluate, table) -> int:
    from ..evaluation import write_json

    # Arguments and the data set first: a wrong --root fails before minutes of model loading.
    _check_arguments(args)
    dataset = load_dataset(args.dataset, args.root)
    result = evaluate(_load_model(args, args.model), dataset, **_loader_options(args))
    print(table(result))
    if args.json:
        print(f"wrote {write_json(result, args.json)}")
    return 0


def run_length_curve(args: argparse.Namespace) -> int:
    from ..evaluation import (
        length_curve,
        length_curve_table,
        load_retrieval_dataset,
        require_matplotlib,
        write_length_curve,
    )

    # Checked first: the plot is drawn last, after minutes of encoding.
    _check_arguments(args)
    require_matplotlib()
    dataset = load_retrieval_dataset(args.dataset, args.root)
    models = [_load_model(args, source) for source in args.model]
    curve = length_curve(models, dataset, args.lengths, **_loader_options(args))
    json_path, png_path = write_length_curve(curve, args.out)
    print(length_curve_table(curve))
    print(f"wrote {json_path} and {png_path}")
    return 0


def _add_generation(tasks) -> None:
    parser = tasks.add_parser(
        "generation",
        help="generate from long prompts with several pipelines and score the images with a judge model",
        description="For each prompt, every pipeline asked generates one image per seed (the same seeds for "
        "all); a judge model scores each image against the whole prompt and sentence by sentence. Writes "
        "results.json, results.md (intervals from a paired bootstrap, time per image) and a contact sheet "
        "per prompt into --out. Images already in --out, made with the same settings, are reused.",
    )
    parser.add_argument(
        "--prompts",
        required=True,
        metavar="FILE",
        help="prompt list: .txt (one per line), .jsonl (a 'prompt' field per line) or DPG-Bench's dpg_bench.csv",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for images, sheets and results (resumable)"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N prompts")
    parser.add_argument(
        "--pipelines",
        nargs="+",
        choices=GENERATION_PIPELINES,
        default=list(DEFAULT_GENERATION_PIPELINES),
        metavar="NAME",
        help=f"pipelines to compare, from {', '.join(GENERATION_PIPELINES)} (default: %(default)s); stock reads "
        "77 tokens, compel chunks at 77, longclip-RECIPE swaps in --long-clip, tulip swaps in --tulip",
    )
    add_model_sources(parser)
    parser.add_argument(
        "--tulip", metavar="SRC", help="TULIP text encoder for the tulip pipeline: checkpoint or folder"
    )
    parser.add_argument(
        "--judge",
        default=DEFAULT_LONG_CLIP,
        metavar="SRC",
        help="full CLIP-like model that scores the images: anything `eval retrieval --model` takes "
        "(default: %(default)s; a judge that shares an encoder with a pipeline may favour it)",
    )
    _add_tokenizer(parser)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3], metavar="SEED", help="(default: %(default)s)"
    )
    add_sampling_options(parser)
    parser.add_argument("--negative-prompt", default="", help="encoded by every pipeline (default: empty)")
    parser.add_argument(
        "--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples (default: %(default)s)"
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="interval coverage (default: %(default)s)")
    parser.add_argument(
        "--shuffle-seed",
        type=int,
        default=0,
        metavar="SEED",
        help="picks the other prompt each prompt's images are compared with, and the bootstrap draws (default: 0)",
    )
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="judge batch size (default: 64)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda, else mps, else cpu)")
    parser.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        help="the judge's weights' dtype (default: as saved; pipelines: float16 on a GPU)",
    )
    add_tiny_random(parser, "tiny pipeline, encoders and judge, to try the command end to end; numbers mean nothing")
    parser.set_defaults(func=run_generation)


def run_generation(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..evaluation.generation import (
        GenerationSettings,
        build_candidates,
        evaluate_generation,
        require_compel,
    )
    from ..evaluation.prompt_files import read_prompts
    from ..evaluation.report import generation_markdown
    from .generate import load_stock_and_long_clip

    # Checked first: a wrong file or a missing option fails before minutes of model loading.
    prompts = read_prompts(args.prompts, limit=args.limit)
    if "tulip" in args.pipelines and not (args.tulip or args.tiny_random):
        raise InvalidArgumentError("the tulip pipeline needs a TULIP text encoder. Fix: pass --tulip SRC.")
    if "compel" in args.pipelines:
        require_compel()
    settings = GenerationSettings(
        steps=args.steps,
        guidance=args.guidance,
        height=args.height,
        width=args.width,
        negative_prompt=args.negative_prompt,
    )
    stock, long_clip = load_stock_and_long_clip(args)
    if args.tiny_random:
        from .. import tiny
        from ..evaluation.judge import tiny_random_judge

        tulip, judge = tiny.tiny_tulip_text_encoder(tokenizer=stock.tokenizer), tiny_random_judge()
        sources = dict.fromkeys(("pipeline", "long_clip", "tulip", "judge"), "tiny-random")
    else:
        tulip, judge = args.tulip, _load_model(args, args.judge)
        sources = {"pipeline": args.pipeline, "long_clip": args.long_clip, "tulip": args.tulip, "judge": args.judge}
    candidates = build_candidates(stock, args.pipelines, settings, long_clip=long_clip, tulip=tulip, sources=sources)
    description = {"prompt_file": str(args.prompts), "sources": sources, "settings": asdict(settings)}
    result = evaluate_generation(
        candidates,
        prompts,
        args.seeds,
        judge,
        args.out,
        resamples=args.bootstrap,
        confidence=args.confidence,
        shuffle_seed=args.shuffle_seed,
        batch_size=args.batch_size,
        description=description,
    )
    print(generation_markdown(result))
    print(f"wrote {args.out}/results.json, {args.out}/results.md and {len(prompts)} sheet(s) in {args.out}/sheets")
    return 0
