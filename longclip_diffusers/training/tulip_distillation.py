"""TULIP's two training stages (TULIP paper sections 3.3-3.4; docs/tulip.md), built on the
Long-CLIP trainer's data, optimiser, checkpoint and loop code (:mod:`longclip_diffusers.training`).

* Stage 1, relative position distillation (:func:`distill_tulip`): a RoPE student initialised
  from the CLIP teacher's weights learns ``1 - cos(teacher, student)`` of the projected text
  features, text only, captions cut at 77 tokens, token embedding frozen; AdamW lr 5e-4, weight
  decay 0.1, 1000 warm-up steps.
* Stage 2, relative position expansion (:func:`expand_tulip`): the student replaces the text
  tower of the full CLIP; contrastive loss on (image, long caption) + (image, short caption) at
  248 tokens, lr 1e-5, everything trained.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, CLIPTextModelWithProjection

from ..compat import text_config, vision_config, vision_image_size
from ..conversion.model_building import build_without_init
from ..errors import IncompatibleEncoderError, InvalidArgumentError
from ..io.export import save_clip_model, save_text_encoder
from ..io.loading import load_clip_model, load_text_encoder, load_tokenizer
from ..tulip.configuration import TulipConfig, tulip_text_config_from_clip
from ..tulip.context import set_context_length
from ..tulip.full_model import TulipModel
from ..tulip.modeling import TulipTextModelWithProjection
from ..tulip.rope import DEFAULT_NTK_ALPHA
from .checkpointing import check_output_dir
from .config import add_data_arguments, add_optimization_arguments, add_run_arguments, check_training_args
from .data import CaptionTokens, check_image_data
from .loop import (
    TrainResult,
    epoch_batches,
    finish_run,
    make_accelerator,
    optimizer_step,
    plan_run_data,
    prepare_run,
    run_on_main,
    run_then_teardown,
    run_training_steps,
    train_contrastive,
)
from .records import read_records
from .trimmed_text import trim_to_longest

#: Stage 1 cuts captions where the teacher's absolute positions end (paper section 4).
TEACHER_CONTEXT_LENGTH = 77
#: The student's context after distillation and the length stage 2 trains at (paper section 4).
STUDENT_CONTEXT_LENGTH = 248


def student_from_teacher(
    teacher: CLIPTextModelWithProjection,
    *,
    hidden_act: str = "gelu",
    max_position_embeddings: int = STUDENT_CONTEXT_LENGTH,
) -> TulipTextModelWithProjection:
    """The RoPE student initialised with every teacher weight but the position table (paper
    section 3.3). ``hidden_act`` defaults to exact GELU, what the released RoPE tower runs.
    ``max_position_embeddings`` is also recorded as the ``trained_length`` NTK scaling starts
    from: stage 2 trains at it (docs/tulip.md)."""
    config = tulip_text_config_from_clip(
        text_config(teacher),
        hidden_act=hidden_act,
        max_position_embeddings=max_position_embeddings,
        trained_length=max_position_embeddings,
    )
    student = TulipTextModelWithProjection(config)
    weights = {key: value for key, value in teacher.state_dict().items() if ".position_" not in key}
    student.load_state_dict(weights, strict=True)
    # PreTrainedModel.to is wrapped with functools.wraps, which mypy reads as an unbound callable
    return student.to(dtype=teacher.dtype, device=teacher.device)  # type: ignore[call-arg]


def distillation_loss(teacher_features: torch.Tensor, student_features: torch.Tensor) -> torch.Tensor:
    """TULIP's cosine distillation loss (Eq. 3): the batch mean of ``1 - cos(teacher, student)``."""
    return (1 - F.cosine_similarity(student_features, teacher_features.detach(), dim=-1)).mean()


class DistillationPair(nn.Module):
    """Frozen teacher and trained student in one module, so the forward that DDP wraps holds the
    whole loss; batches are cut after their longest caption (exact: both are causal, EOT-pooled)."""

    def __init__(self, teacher: nn.Module, student: TulipTextModelWithProjection):
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.student = student
        self.eos_token_id = student.config.eos_token_id

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        input_ids = trim_to_longest(input_ids, self.eos_token_id)
        with torch.no_grad():
            teacher = self.teacher(input_ids).text_embeds
        return distillation_loss(teacher, self.student(input_ids).text_embeds)


@torch.no_grad()
def mean_cosine(teacher: nn.Module, student: nn.Module, input_ids: torch.Tensor) -> float:
    """Mean teacher-student cosine similarity of projected text features (1 = distilled)."""
    return float(
        F.cosine_similarity(student(input_ids).text_embeds, teacher(input_ids).text_embeds, dim=-1).float().mean()
    )


def distill_tulip(args: argparse.Namespace) -> TrainResult:
    """Stage 1 for parsed ``args`` (see :func:`build_distill_parser`); every process calls it.
    The main process writes the student (a TULIP text encoder with projection, tokenizer at the
    student's length) and ``training_summary.json`` into ``args.output_dir``."""
    check_output_dir(args.output_dir, args.overwrite, args.resume_from)
    accelerator = make_accelerator(args)
    captions = [record.caption for record in read_records(args.data)]
    data = plan_run_data(captions, args, accelerator.num_processes, "training captions")
    torch.manual_seed(args.seed)
    # a plain OpenAI CLIP file stays at 77 positions: the teacher is CLIP, not a stretched CLIP
    teacher = load_text_encoder(args.teacher, with_projection=True, stretch=False)
    if not isinstance(teacher, CLIPTextModelWithProjection):
        raise IncompatibleEncoderError(
            f"--teacher {args.teacher} is a TULIP encoder; stage 1 distils a CLIP teacher's absolute "
            "positions into RoPE. Fix: pass a CLIP (or Long-CLIP) text encoder"
        )
    if text_config(teacher).max_position_embeddings < args.context_length:
        raise InvalidArgumentError(
            f"the teacher has {text_config(teacher).max_position_embeddings} positions, fewer than "
            f"--context-length {args.context_length}; lower --context-length"
        )
    student = student_from_teacher(teacher, hidden_act=args.hidden_act, max_position_embeddings=args.student_length)
    student.get_input_embeddings().requires_grad_(False)  # frozen, as in the paper
    if args.gradient_checkpointing:
        student.gradient_checkpointing_enable()
    tokenizer = load_tokenizer(args.tokenizer or args.teacher, model_max_length=args.context_length)
    collate = CaptionTokens(tokenizer, args.context_length)
    pair, optimizer, scheduler, progress = prepare_run(
        accelerator,
        DistillationPair(teacher, student).train(),
        student,
        args,
        data.total_steps,
        project_name="tulip-distill",
    )

    def distillation_step(input_ids: torch.Tensor) -> dict[str, float]:
        with accelerator.autocast():
            loss = pair(input_ids.to(accelerator.device))
        optimizer_step(accelerator, loss, optimizer, scheduler, progress)
        return {"train/loss": accelerator.reduce(loss.detach().float(), reduction="mean").item()}

    def held_out_cosine(unwrapped: DistillationPair) -> dict[str, float]:
        ids = collate(data.held_out).to(accelerator.device)
        return {"val/cosine": mean_cosine(unwrapped.teacher, unwrapped.student, ids)}

    def validate(step: int) -> dict[str, float]:
        return run_on_main(accelerator, pair, held_out_cosine, step)

    losses, validation = run_training_steps(
        accelerator,
        args,
        progress,
        scheduler,
        epoch_batches(data.train, collate, args, accelerator, progress),
        distillation_step,
        data.total_steps,
        desc="distilling",
        validate=validate if data.held_out else None,
    )
    result = TrainResult(
        model=accelerator.unwrap_model(pair).student, steps=progress.step, losses=losses, validation=validation
    )
    tokenizer.model_max_length = args.student_length
    return finish_run(
        accelerator,
        result,
        lambda student, folder: save_text_encoder(student, folder, tokenizer=tokenizer),
        args.output_dir,
    )


def tulip_from_clip(clip: CLIPModel | TulipModel, student: TulipTextModelWithProjection) -> TulipModel:
    """Stage 2's starting point: the student's text tower and projection with the CLIP model's
    vision tower, visual projection and logit scale (paper section 3.4). A ``TulipModel`` gives
    its vision tower as well."""
    config = TulipConfig(
        text_config=student.config.to_dict(),
        vision_config=vision_config(clip).to_dict(),
        projection_dim=student.config.projection_dim,
        logit_scale_init_value=float(clip.logit_scale.detach()),
    )
    if clip.config.projection_dim != student.config.projection_dim:
        raise IncompatibleEncoderError(
            f"the student projects to {student.config.projection_dim} features, the CLIP model's "
            f"images to {clip.config.projection_dim}; distil from the text tower of this CLIP model"
        )
    # every weight is loaded next, strictly: no random initialisation of a whole CLIP first
    model = build_without_init(TulipModel, config)
    kept = ("vision_model.", "visual_projection.", "logit_scale")
    weights = {**student.state_dict(), **{k: v for k, v in clip.state_dict().items() if k.startswith(kept)}}
    model.load_state_dict(weights, strict=True)
    return model.to(dtype=clip.dtype)


def expand_tulip(args: argparse.Namespace) -> TrainResult:
    """Stage 2 for parsed ``args`` (see :func:`build_expand_parser`), on the Long-CLIP trainer's
    loop; the main process writes a full :class:`TulipModel` (with image-processor config and
    tokenizer at ``--max-length``) and ``training_summary.json`` into ``args.output_dir``."""
    check_output_dir(args.output_dir, args.overwrite, args.resume_from)
    accelerator = make_accelerator(args)
    data = plan_run_data(read_records(args.data), args, accelerator.num_processes, "training pairs")
    check_image_data(data.train, args.image_root)
    student = load_text_encoder(args.student, with_projection=True)
    if not isinstance(student, TulipTextModelWithProjection):
        raise IncompatibleEncoderError(
            f"--student {args.student} is not a TULIP text encoder; pass stage 1's output folder"
        )
    if args.max_length > student.config.max_position_embeddings:
        set_context_length(student, args.max_length, ntk_alpha=args.ntk_alpha)
    model = tulip_from_clip(load_clip_model(args.base_model), student).train()
    if args.freeze_vision:
        model.vision_model.requires_grad_(False)
        model.visual_projection.requires_grad_(False)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    tokenizer = load_tokenizer(args.tokenizer or args.student, model_max_length=args.max_length)
    result = train_contrastive(
        args,
        accelerator,
        model,
        tokenizer,
        data,
        max_length=args.max_length,
        image_size=vision_image_size(model),
        project_name="tulip-expand",
    )
    return finish_run(
        accelerator, result, lambda tulip, folder: save_clip_model(tulip, folder, tokenizer=tokenizer), args.output_dir
    )


def build_distill_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Stage 1's arguments; the defaults are the TULIP paper's."""
    model = parser.add_argument_group("models")
    model.add_argument(
        "--teacher",
        required=True,
        help="the absolute-position CLIP text tower to distil: a transformers CLIP folder or hub id (e.g. openai/clip-vit-large-patch14), or a checkpoint",
    )
    model.add_argument("--tokenizer", default=None, help="tokenizer folder or hub id (default: the teacher's)")
    model.add_argument(
        "--context-length",
        type=int,
        default=TEACHER_CONTEXT_LENGTH,
        help=f"captions are cut to this many tokens for teacher and student (default {TEACHER_CONTEXT_LENGTH})",
    )
    model.add_argument(
        "--student-length",
        type=int,
        default=STUDENT_CONTEXT_LENGTH,
        help=f"context length the exported student is set to (default {STUDENT_CONTEXT_LENGTH})",
    )
    model.add_argument(
        "--hidden-act",
        choices=("gelu", "quick_gelu"),
        default="gelu",
        help="student activation (default gelu, as released; the OpenAI teacher runs quick_gelu)",
    )
    add_data_arguments(parser)
    add_optimization_arguments(parser, lr=5e-4, weight_decay=0.1, warmup_steps=1000, batch_size=640)
    add_run_arguments(parser)
    # stage 1 has no contrastive loss; check_training_args reads these
    parser.set_defaults(label_smoothing=0.0, stage=distill_tulip)
    return parser


def build_expand_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Stage 2's arguments; the defaults are the TULIP paper's."""
    model = parser.add_argument_group("models")
    model.add_argument(
        "--student", required=True, help="stage 1's output folder (a TULIP text encoder with projection)"
    )
    model.add_argument(
        "--base-model",
        required=True,
        help="the CLIP model whose vision tower and logit scale TULIP keeps (folder, hub id or checkpoint)",
    )
    model.add_argument("--tokenizer", default=None, help="tokenizer folder or hub id (default: the student's)")
    model.add_argument(
        "--max-length",
        type=int,
        default=STUDENT_CONTEXT_LENGTH,
        help=f"caption tokens (default {STUDENT_CONTEXT_LENGTH})",
    )
    model.add_argument(
        "--ntk-alpha",
        type=float,
        default=DEFAULT_NTK_ALPHA,
        help=f"NTK-aware RoPE scaling when --max-length exceeds the student's length (default {DEFAULT_NTK_ALPHA:g})",
    )
    model.add_argument("--freeze-vision", action="store_true", help="train the text side only")
    model.add_argument(
        "--short-loss-weight", type=float, default=1.0, help="weight of the (image, short caption) loss (default 1)"
    )
    model.add_argument(
        "--label-smoothing",
        type=float,
        default=0.0,
        help="label smoothing of the contrastive loss (default 0, open_clip's)",
    )
    add_data_arguments(parser)
    add_optimization_arguments(parser, lr=1e-5, weight_decay=0.1, warmup_steps=1000, batch_size=1280)
    add_run_arguments(parser)
    # TULIP's loss is plain long + short contrastive: no PCA of the image features
    parser.set_defaults(pca_dim=None, pca_scope="global", stage=expand_tulip)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a TULIP text encoder: stage 1 'distill' (RoPE student from a CLIP teacher, "
        "captions only) then stage 2 'expand' (contrastive fine-tuning with images at 248 tokens)."
    )
    stages = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    build_distill_parser(
        stages.add_parser(
            "distill", help="stage 1: relative position distillation (text only; --image-root is not used)"
        )
    )
    build_expand_parser(
        stages.add_parser("expand", help="stage 2: relative position expansion (images + long and short captions)")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Script entry point (:func:`~longclip_diffusers.training.loop.run_then_teardown`): 0 once
    the stage is trained, 1 and one line on a user error."""
    return run_then_teardown(_run_stage, argv)


def _run_stage(argv: Sequence[str] | None) -> TrainResult:
    args = check_training_args(build_parser().parse_args(argv))
    return args.stage(args)
