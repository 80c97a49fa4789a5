"""longclip-diffusers: Long-CLIP and TULIP text encoders for diffusers pipelines."""

from .errors import (
    CheckpointError,
    IncompatibleEncoderError,
    LongClipError,
    MissingDependencyError,
    ModelNotAvailableError,
    OutputExistsError,
)
from .stretch import stretch_plan, stretch_position_table, stretch_text_encoder, stretched_length
from .checkpoint import read_state_dict
from .convert import convert_checkpoint
from .atomic import atomic_output_dir, atomic_write_file
from .export import export_checkpoint, save_clip_model, save_model, save_text_encoder
from .loading import load_clip_model, load_text_encoder, load_tokenizer
from .tulip import (
    TulipConfig,
    TulipModel,
    TulipTextConfig,
    TulipTextModel,
    TulipTextModelWithProjection,
    convert_tulip_checkpoint,
    ntk_scaled_base,
    set_context_length,
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
from .pipeline_patch import apply_long_clip, long_clip_pair
from .recipes import RECIPES
from .tokens import PromptWord, TokenReport, token_report, tokenizer_at
from .encoder_length import fit_encoder_length
from .conditioning import (
    PromptEncoder,
    encode_sd15,
    encode_sdxl,
    fit_prompt_encoder,
    load_prompt_encoder,
    sd15_conditioning,
    sdxl_conditioning,
)
from .comfy_clip import comfy_long_clip_state_dicts
from .training.losses import PcmLoss, clip_contrastive_loss, pca_reconstruct, pcm_loss

#: Exported on first use: importing them loads diffusers' pipeline modules (seconds).
_LAZY_PIPELINES = ("LongClipStableDiffusionPipeline", "LongClipStableDiffusionXLPipeline")


def __getattr__(name: str):
    if name in _LAZY_PIPELINES:
        from . import long_clip_pipelines

        return getattr(long_clip_pipelines, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"
