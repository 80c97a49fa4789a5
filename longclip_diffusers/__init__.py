"""longclip-diffusers: Long-CLIP and TULIP text encoders for diffusers pipelines.

Every public name is importable from here. Each is imported from its layer on first use, so
``import longclip_diffusers`` (and ``longclip-diffusers --help``) does not load torch,
transformers or diffusers until something needs them.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # errors
    "CheckpointError": ".errors",
    "DataFormatError": ".errors",
    "IncompatibleEncoderError": ".errors",
    "InputNotFoundError": ".errors",
    "InvalidArgumentError": ".errors",
    "LongClipError": ".errors",
    "MissingDependencyError": ".errors",
    "ModelNotAvailableError": ".errors",
    "OutputExistsError": ".errors",
    "ShardError": ".errors",
    "FeatureCacheError": ".errors",
    "PathKindError": ".errors",
    "DeviceNotAvailableError": ".errors",
    "VocabularyMismatchError": ".errors",
    "UnreadableDataError": ".errors",
    "ServerAddressError": ".errors",
    "TextTooLongError": ".errors",
    "TrainingDivergedError": ".errors",
    "UnsupportedModelError": ".errors",
    "UnsupportedOptionError": ".errors",
    # length: the stretching rule and fitting an encoder to N positions
    "stretch_plan": ".length.stretching",
    "stretch_position_table": ".length.stretching",
    "stretch_text_encoder": ".length.stretching",
    "stretched_length": ".length.stretching",
    "fit_encoder_length": ".length.fit_length",
    "PromptWord": ".length.tokens",
    "TokenReport": ".length.tokens",
    "token_report": ".length.tokens",
    "tokenizer_at": ".length.tokens",
    # conversion
    "read_state_dict": ".conversion.read_checkpoint",
    "convert_checkpoint": ".conversion.convert",
    "convert_tulip_checkpoint": ".conversion.tulip_checkpoint",
    # io
    "atomic_output_dir": ".io.atomic",
    "atomic_write_file": ".io.atomic",
    "export_checkpoint": ".io.export",
    "save_clip_model": ".io.export",
    "save_model": ".io.export",
    "save_text_encoder": ".io.export",
    "load_clip_model": ".io.loading",
    "load_text_encoder": ".io.loading",
    "load_tokenizer": ".io.loading",
    # tulip model code
    "TulipConfig": ".tulip",
    "TulipModel": ".tulip",
    "TulipTextConfig": ".tulip",
    "TulipTextModel": ".tulip",
    "TulipTextModelWithProjection": ".tulip",
    "ntk_scaled_base": ".tulip",
    "set_context_length": ".tulip",
    # the diffusers drop-in
    "apply_long_clip": ".drop_in.swap_encoders",
    "long_clip_pair": ".drop_in.swap_encoders",
    "RECIPES": ".drop_in.layer_recipes",
    "LongClipStableDiffusionPipeline": ".drop_in.pipeline_classes",
    "LongClipStableDiffusionXLPipeline": ".drop_in.pipeline_classes",
    # comfyui glue
    "EncoderWithTokenizer": ".comfyui.conditioning",
    "encode_sd15": ".comfyui.conditioning",
    "encode_sdxl": ".comfyui.conditioning",
    "fit_encoder_with_tokenizer": ".comfyui.conditioning",
    "load_encoder_with_tokenizer": ".comfyui.conditioning",
    "sd15_conditioning": ".comfyui.conditioning",
    "sdxl_conditioning": ".comfyui.conditioning",
    "comfy_long_clip_state_dicts": ".comfyui.clip_state_dicts",
    # training losses
    "PcmLoss": ".training.losses",
    "clip_contrastive_loss": ".training.losses",
    "pca_reconstruct": ".training.losses",
    "pcm_loss": ".training.losses",
    # evaluation
    "EvalModel": ".evaluation",
    "evaluate_retrieval": ".evaluation",
    "evaluate_zeroshot": ".evaluation",
    "feature_recall_at_k": ".evaluation",
    "length_curve": ".evaluation",
    "load_classification_dataset": ".evaluation",
    "load_eval_model": ".evaluation",
    "load_retrieval_dataset": ".evaluation",
    "recall_at_k": ".evaluation",
    "topk_accuracy": ".evaluation",
}

#: Names of 0.1, kept working with a DeprecationWarning: old name -> new name.
_DEPRECATED: dict[str, str] = {
    "PromptEncoder": "EncoderWithTokenizer",
    "load_prompt_encoder": "load_encoder_with_tokenizer",
    "fit_prompt_encoder": "fit_encoder_with_tokenizer",
}

__all__ = [
    "__version__",
    "CheckpointError",
    "DataFormatError",
    "DeviceNotAvailableError",
    "EncoderWithTokenizer",
    "EvalModel",
    "FeatureCacheError",
    "IncompatibleEncoderError",
    "InputNotFoundError",
    "InvalidArgumentError",
    "LongClipError",
    "LongClipStableDiffusionPipeline",
    "LongClipStableDiffusionXLPipeline",
    "MissingDependencyError",
    "ModelNotAvailableError",
    "OutputExistsError",
    "PathKindError",
    "PcmLoss",
    "PromptWord",
    "RECIPES",
    "ServerAddressError",
    "ShardError",
    "TextTooLongError",
    "TokenReport",
    "TrainingDivergedError",
    "TulipConfig",
    "TulipModel",
    "TulipTextConfig",
    "TulipTextModel",
    "TulipTextModelWithProjection",
    "UnreadableDataError",
    "UnsupportedModelError",
    "UnsupportedOptionError",
    "VocabularyMismatchError",
    "apply_long_clip",
    "atomic_output_dir",
    "atomic_write_file",
    "clip_contrastive_loss",
    "comfy_long_clip_state_dicts",
    "convert_checkpoint",
    "convert_tulip_checkpoint",
    "encode_sd15",
    "encode_sdxl",
    "evaluate_retrieval",
    "evaluate_zeroshot",
    "export_checkpoint",
    "feature_recall_at_k",
    "fit_encoder_length",
    "fit_encoder_with_tokenizer",
    "length_curve",
    "load_classification_dataset",
    "load_clip_model",
    "load_encoder_with_tokenizer",
    "load_eval_model",
    "load_retrieval_dataset",
    "load_text_encoder",
    "load_tokenizer",
    "long_clip_pair",
    "ntk_scaled_base",
    "pca_reconstruct",
    "pcm_loss",
    "read_state_dict",
    "recall_at_k",
    "save_clip_model",
    "save_model",
    "save_text_encoder",
    "sd15_conditioning",
    "sdxl_conditioning",
    "set_context_length",
    "stretch_plan",
    "stretch_position_table",
    "stretch_text_encoder",
    "stretched_length",
    "token_report",
    "tokenizer_at",
    "topk_accuracy",
]


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(
            f"longclip_diffusers.{name} is deprecated, use longclip_diffusers.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return __getattr__(new)
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from .comfyui.clip_state_dicts import comfy_long_clip_state_dicts
    from .comfyui.conditioning import (
        EncoderWithTokenizer,
        encode_sd15,
        encode_sdxl,
        fit_encoder_with_tokenizer,
        load_encoder_with_tokenizer,
        sd15_conditioning,
        sdxl_conditioning,
    )
    from .conversion.convert import convert_checkpoint
    from .conversion.read_checkpoint import read_state_dict
    from .conversion.tulip_checkpoint import convert_tulip_checkpoint
    from .drop_in.layer_recipes import RECIPES
    from .drop_in.pipeline_classes import LongClipStableDiffusionPipeline, LongClipStableDiffusionXLPipeline
    from .drop_in.swap_encoders import apply_long_clip, long_clip_pair
    from .errors import (
        CheckpointError,
        DataFormatError,
        DeviceNotAvailableError,
        FeatureCacheError,
        IncompatibleEncoderError,
        InputNotFoundError,
        InvalidArgumentError,
        LongClipError,
        MissingDependencyError,
        ModelNotAvailableError,
        OutputExistsError,
        PathKindError,
        ServerAddressError,
        ShardError,
        TextTooLongError,
        TrainingDivergedError,
        UnreadableDataError,
        UnsupportedModelError,
        UnsupportedOptionError,
        VocabularyMismatchError,
    )
    from .evaluation import (
        EvalModel,
        evaluate_retrieval,
        evaluate_zeroshot,
        feature_recall_at_k,
        length_curve,
        load_classification_dataset,
        load_eval_model,
        load_retrieval_dataset,
        recall_at_k,
        topk_accuracy,
    )
    from .io.atomic import atomic_output_dir, atomic_write_file
    from .io.export import export_checkpoint, save_clip_model, save_model, save_text_encoder
    from .io.loading import load_clip_model, load_text_encoder, load_tokenizer
    from .length.fit_length import fit_encoder_length
    from .length.stretching import stretch_plan, stretch_position_table, stretch_text_encoder, stretched_length
    from .length.tokens import PromptWord, TokenReport, token_report, tokenizer_at
    from .training.losses import PcmLoss, clip_contrastive_loss, pca_reconstruct, pcm_loss
    from .tulip import (
        TulipConfig,
        TulipModel,
        TulipTextConfig,
        TulipTextModel,
        TulipTextModelWithProjection,
        ntk_scaled_base,
        set_context_length,
    )
