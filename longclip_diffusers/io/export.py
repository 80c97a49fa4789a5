"""Save CLIP encoders in the layout every consumer loads.

transformers 5 writes a flat ``CLIPTextModel`` without the ``text_model.`` key prefix, while
transformers 4.x, ComfyUI and single-file loaders expect ``text_model.embeddings...``
(docs/sdxl-recipes.md); transformers 5 reads both. So the weights are written here, always with
the ``text_model.`` / ``vision_model.`` prefixes, as one ``model.safetensors`` beside the usual
``config.json``. A tokenizer is saved at the model's length with its special ids copied into the
config; a full model also gets the image-processor config of its vision tower.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformers import (
    CLIPModel,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    PreTrainedTokenizerBase,
)

from ..compat import text_config, text_transformer
from ..constants import DTYPE_NAMES
from ..conversion.convert import convert_checkpoint
from ..conversion.model_building import ConvertKind
from ..errors import IncompatibleEncoderError, InvalidArgumentError, UnsupportedModelError, VocabularyMismatchError
from ..length.stretching import DEFAULT_KEEP, DEFAULT_RATIO
from ..length.tokens import tokenizer_at
from ..tulip import TulipModel, TulipTextModel, TulipTextModelWithProjection
from .atomic import atomic_output_dir
from .image_preprocessing import clip_image_processor

#: The text encoders and full models saved here: CLIP's classes and their TULIP counterparts.
TEXT_ENCODER_CLASSES = (CLIPTextModel, CLIPTextModelWithProjection, TulipTextModel, TulipTextModelWithProjection)
FULL_MODEL_CLASSES = (CLIPModel, TulipModel)
TextEncoder = CLIPTextModel | CLIPTextModelWithProjection | TulipTextModel | TulipTextModelWithProjection
FullModel = CLIPModel | TulipModel

#: The ``--dtype`` / ``torch_dtype`` choices, by name.
DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPE_NAMES}

WEIGHTS_NAME = "model.safetensors"


def resolve_dtype(torch_dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"float16"`` or ``torch.float16`` -> ``torch.float16``; None stays None (keep as is)."""
    if torch_dtype is None or (isinstance(torch_dtype, torch.dtype) and torch_dtype in DTYPES.values()):
        return torch_dtype
    if isinstance(torch_dtype, str) and torch_dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[torch_dtype.removeprefix("torch.")]
    raise InvalidArgumentError(f"unsupported dtype {torch_dtype!r}; use one of {', '.join(DTYPES)}")


def save_text_encoder(
    model: TextEncoder,
    out_dir: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    torch_dtype: str | torch.dtype | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a text encoder to ``out_dir`` (written atomically) so that
    ``CLIPTextModel.from_pretrained(out_dir)`` / ``CLIPTextModelWithProjection`` load it; keys
    on disk start with ``text_model.``. Returns ``out_dir``."""
    if not isinstance(model, TEXT_ENCODER_CLASSES):
        raise UnsupportedModelError(
            f"save_text_encoder takes a CLIPTextModel or CLIPTextModelWithProjection (or TULIP's), got "
            f"{type(model).__name__}; use save_clip_model for a full CLIPModel"
        )
    return save_model(model, out_dir, tokenizer, torch_dtype, overwrite)


def save_clip_model(
    model: FullModel,
    out_dir: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    torch_dtype: str | torch.dtype | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a text + vision ``CLIPModel`` to ``out_dir`` (written atomically), with a
    ``preprocessor_config.json`` for its vision tower, so ``CLIPModel.from_pretrained(out_dir)``
    and, given a tokenizer, ``CLIPProcessor.from_pretrained(out_dir)`` work. Returns ``out_dir``."""
    if not isinstance(model, FULL_MODEL_CLASSES):
        raise UnsupportedModelError(
            f"save_clip_model takes a CLIPModel or TulipModel, got {type(model).__name__}; "
            "use save_text_encoder for a text encoder"
        )
    return save_model(model, out_dir, tokenizer, torch_dtype, overwrite)


def prefixed_state_dict(model: torch.nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The model's weights keyed as on disk (``text_model.`` prefix even for transformers 5's
    flat ``CLIPTextModel``), on CPU, floating tensors cast to ``dtype`` when given."""
    prefix = "text_model." if text_transformer(model) is model else ""
    tensors = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[prefix + key] = tensor.contiguous()
    return tensors


def save_model(
    model: TextEncoder | FullModel,
    out_dir: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    torch_dtype: str | torch.dtype | None = None,
    overwrite: bool = False,
) -> Path:
    """:func:`save_clip_model` or :func:`save_text_encoder`, whichever fits ``model``."""
    if not isinstance(model, FULL_MODEL_CLASSES + TEXT_ENCODER_CLASSES):
        raise UnsupportedModelError(
            f"expected a CLIPModel, CLIPTextModel or CLIPTextModelWithProjection (or TULIP's), got {type(model).__name__}"
        )
    dtype = resolve_dtype(torch_dtype)
    with atomic_output_dir(out_dir, overwrite=overwrite) as staging:
        _write(model, staging, tokenizer, dtype)
    return Path(out_dir)


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    kind: ConvertKind = "full",
    tokenizer: PreTrainedTokenizerBase | None = None,
    torch_dtype: str | torch.dtype | None = None,
    overwrite: bool = False,
    keep: int = DEFAULT_KEEP,
    ratio: float = DEFAULT_RATIO,
    tulip: bool | None = None,
    tower: str | None = None,
) -> Path:
    """Convert an OpenAI-layout checkpoint file (:func:`~longclip_diffusers.conversion.convert.convert_checkpoint`)
    and save it to ``out_dir`` in one atomic step: an existing ``out_dir`` is refused before any
    work, and a failure at any point leaves nothing behind. ``tokenizer`` also supplies the
    special ids the converted config pools with; ``tower`` picks the text encoder of a file
    holding several (:func:`~longclip_diffusers.conversion.convert.convert_checkpoint`)."""
    dtype = resolve_dtype(torch_dtype)
    ids = {}
    if tokenizer is not None:
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    with (
        atomic_output_dir(out_dir, overwrite=overwrite) as staging,
        tqdm(total=2, desc=f"{Path(checkpoint).name}: converting", unit="step", leave=False) as progress,
    ):
        try:
            model = convert_checkpoint(checkpoint, kind=kind, keep=keep, ratio=ratio, tulip=tulip, tower=tower, **ids)
        except VocabularyMismatchError as exc:
            raise _vocabulary_error(checkpoint, exc.vocab_size, tokenizer) from None
        progress.update()
        progress.set_description(f"{Path(checkpoint).name}: writing {Path(out_dir).name}")
        _write(model, staging, tokenizer, dtype)
        progress.update()
    return Path(out_dir)


def _vocabulary_error(checkpoint, vocab_size: int | None, tokenizer) -> VocabularyMismatchError:
    """The start/end ids do not fit the checkpoint's vocabulary: with a tokenizer, it is the wrong
    one; without (the loaders convert with CLIP's ids), the checkpoint needs its own tokenizer."""
    if tokenizer is not None:
        problem = (
            f"the tokenizer's start/end ids ({tokenizer.bos_token_id}/{tokenizer.eos_token_id}) are outside "
            f"the vocabulary of {vocab_size} tokens of '{checkpoint}'"
        )
        fix = "pass the tokenizer this checkpoint was trained with (--tokenizer / tokenizer=)"
    else:
        problem = f"'{checkpoint}' has a vocabulary of {vocab_size} tokens, too small for CLIP's start/end ids"
        fix = (
            f"convert it with the tokenizer it was trained with, `longclip-diffusers convert {checkpoint} OUT "
            "--tokenizer TOK` (export_checkpoint(..., tokenizer=) in Python), and load OUT"
        )
    return VocabularyMismatchError(f"{problem}. Fix: {fix}.", vocab_size)


def _write(model, directory: Path, tokenizer, dtype: torch.dtype | None) -> None:
    """Weights, config, tokenizer and (full models) image-processor config into ``directory``."""
    config = copy.deepcopy(model.config)
    config.architectures = [type(model).__name__]
    config.dtype = str(dtype or model.dtype).removeprefix("torch.")
    if isinstance(model, CLIPModel):
        # both towers project to the top-level width; a tower config left at another width would
        # load the tower's *WithProjection class at the wrong size
        config.text_config.projection_dim = config.vision_config.projection_dim = config.projection_dim
    if tokenizer is not None:
        tokenizer = _fitted_tokenizer(tokenizer, text_config(model))
        # the text config is what CLIP's EOT pooling reads (eos_token_id)
        ids_config = getattr(config, "text_config", config)
        ids_config.bos_token_id = tokenizer.bos_token_id
        ids_config.eos_token_id = tokenizer.eos_token_id
        ids_config.pad_token_id = tokenizer.pad_token_id
    save_file(prefixed_state_dict(model, dtype), directory / WEIGHTS_NAME, metadata={"format": "pt"})
    config.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    if isinstance(model, FULL_MODEL_CLASSES):
        clip_image_processor(model.config.vision_config.image_size).save_pretrained(directory)


def _fitted_tokenizer(tokenizer: PreTrainedTokenizerBase, config) -> PreTrainedTokenizerBase:
    """A copy of ``tokenizer`` whose ``model_max_length`` is the model's number of positions;
    refuses one whose ids would fall outside the model's vocabulary."""
    if len(tokenizer) > config.vocab_size:
        raise IncompatibleEncoderError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary has "
            f"{config.vocab_size}; pass the tokenizer the model was trained with (--tokenizer)"
        )
    return tokenizer_at(tokenizer, config.max_position_embeddings)
