"""``apply_long_clip``: give an SD1.x or SDXL diffusers pipeline 248-token text encoders.

What changes, decided by the pipeline's components (:mod:`longclip_diffusers.drop_in.pipeline_kinds`):

* the CLIP-L ``text_encoder`` (SD1.x, SDXL base) is replaced by the Long-CLIP encoder;
* SDXL's OpenCLIP bigG ``text_encoder_2`` (base and refiner) is replaced by a trained
  Long-CLIP-G encoder when one is given (``text_encoder_2=``), else stretched with
  knowledge-preserved stretching, no training (docs/stretching.md); the pooled vector comes
  from it. Every encoder then has 248 positions, the only mix that works (docs/sdxl-recipes.md);
* the tokenizers read ``max_length`` tokens;
* ``pipe.encode_prompt`` becomes a :class:`~longclip_diffusers.drop_in.encode_prompt.LongClipPromptEncoder`
  (recipe choice, ``clip_skip`` on transformers 5, a warning naming words past the limit).

Everything is checked before anything changes, and any failure while swapping puts the old
components back. Shared modules are never modified: the stretched ``text_encoder_2`` and the
tokenizers are new objects (the encoder's weights are shared, see
:mod:`longclip_diffusers.length.weight_sharing`), so a stock pipeline made with ``from_pipe`` keeps
working at 77 tokens next to the patched one (:func:`long_clip_pair`).

Applying twice raises :class:`~longclip_diffusers.IncompatibleEncoderError`: build a fresh
pipeline (``type(stock).from_pipe(stock)``) for another encoder or recipe.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from torch import nn

from ..compat import text_config
from ..errors import IncompatibleEncoderError
from ..io.loading import load_text_encoder
from ..length.fit_length import fit_encoder_length, position_limit
from ..length.stretching import DEFAULT_KEEP
from ..length.tokens import LONG_LENGTH, tokenizer_at
from ..length.weight_sharing import twin_sharing_weights
from ..tulip.drop_in import drop_in_classes
from .encode_prompt import LongClipPromptEncoder
from .layer_recipes import check_recipe
from .pipeline_kinds import PipelineSlots, detect_slots

if TYPE_CHECKING:  # importing diffusers' pipelines takes seconds; the hints need no import at run time
    from diffusers import DiffusionPipeline

logger = logging.getLogger(__name__)


def apply_long_clip(
    pipe: DiffusionPipeline,
    source: str | os.PathLike | nn.Module | None = None,
    *,
    recipe: str = "standard",
    max_length: int = LONG_LENGTH,
    keep: int = DEFAULT_KEEP,
    ratio: float | None = None,
    text_encoder_2: str | os.PathLike | nn.Module | None = None,
    **load_kwargs,
) -> DiffusionPipeline:
    """Swap Long-CLIP text encoders into ``pipe`` (in place) and return it.

    Args:
        pipe: a diffusers SD1.x, SDXL or SDXL-refiner pipeline of any task (text-to-image,
            img2img, inpaint, ControlNet, ...).
        source: the Long-CLIP-L encoder for the ``text_encoder`` slot: a ``CLIPTextModel`` (or a
            TULIP ``TulipTextModel``, which has no position cap) or
            anything :func:`~longclip_diffusers.load_text_encoder` takes (hub id, ``.pt`` /
            ``.safetensors`` file, transformers directory). It is cast to the replaced encoder's
            dtype and device. May be None for a refiner, or when ``text_encoder`` already has
            ``max_length`` positions (a pipeline saved after ``apply_long_clip``).
        recipe: ``"standard"`` (diffusers' layers, what the UNet was trained on) or
            ``"longclip"`` (the released Long-CLIP SDXL code); see :mod:`longclip_diffusers.drop_in.layer_recipes`.
        max_length: tokens the tokenizers pass on (at most the encoders' positions).
        keep, ratio: knowledge-preserved stretching of ``text_encoder_2`` (Long-CLIP: 20, 4;
            ratio None fits a ``max_length`` above 248 exactly) when no ``text_encoder_2`` is given.
        text_encoder_2: a Long-CLIP-G encoder for SDXL's second slot (base and refiner) in place
            of stretching it: a ``CLIPTextModelWithProjection`` as wide as the slot's with the
            same projection width (the pooled vector), e.g. what ``train_longclip.py`` exports
            from ViT-bigG/14, or anything :func:`~longclip_diffusers.load_text_encoder` takes
            (loaded ``with_projection=True``).
        **load_kwargs: passed to ``load_text_encoder`` (``cache_dir``, ...).

    Raises:
        IncompatibleEncoderError: the pipeline has no CLIP text encoder, is already patched, or the
            encoder does not fit (width, positions, vocabulary); the pipeline is left unchanged.
    """
    check_recipe(recipe)
    slots = detect_slots(pipe)
    _refuse_patched(pipe)
    for slot in slots.encoder_slots:
        _refuse_unmovable(pipe, slot)

    replacements: dict[str, object] = {}
    if slots.stretched_slot and text_encoder_2 is not None:
        replacements[slots.stretched_slot] = _long_clip_encoder(
            pipe, slots.stretched_slot, text_encoder_2, max_length, {**load_kwargs, "with_projection": True}
        )
    elif slots.stretched_slot:
        replacements[slots.stretched_slot] = _stretched(pipe, slots.stretched_slot, max_length, keep, ratio)
    elif text_encoder_2 is not None:
        raise IncompatibleEncoderError(
            f"{type(pipe).__name__} has no text_encoder_2 (SDXL's bigG slot) for the Long-CLIP-G encoder; "
            "pass text_encoder_2 only with an SDXL base or refiner pipeline"
        )
    if slots.long_clip_slot:
        replacements[slots.long_clip_slot] = _long_clip_encoder(
            pipe, slots.long_clip_slot, source, max_length, load_kwargs
        )
    elif source is not None:
        logger.info("%s has no CLIP-L text_encoder: only text_encoder_2 is stretched", type(pipe).__name__)
    for slot in slots.tokenizer_slots:
        replacements[slot] = tokenizer_at(getattr(pipe, slot), max_length)
    _swap(pipe, slots, replacements, recipe)
    return pipe


def _swap(pipe, slots: PipelineSlots, replacements: dict, recipe: str) -> None:
    previous = {slot: getattr(pipe, slot) for slot in replacements}
    offload_device = getattr(pipe, "_offload_device", None) if getattr(pipe, "_all_hooks", None) else None
    try:
        pipe.register_modules(**replacements)
        pipe.encode_prompt = LongClipPromptEncoder(pipe, slots, recipe)
        if offload_device is not None:
            # new modules need accelerate's hooks, in the pipeline's offload order
            pipe.enable_model_cpu_offload(device=offload_device)
    except BaseException:
        pipe.register_modules(**previous)
        pipe.__dict__.pop("encode_prompt", None)
        if offload_device is not None:
            pipe.enable_model_cpu_offload(device=offload_device)
        raise


def _refuse_patched(pipe) -> None:
    installed = pipe.__dict__.get("encode_prompt")
    if isinstance(installed, LongClipPromptEncoder):
        raise IncompatibleEncoderError(
            f"this {type(pipe).__name__} already has Long-CLIP encoders (recipe {installed.recipe!r}); "
            "apply_long_clip works once per pipeline: to try another encoder or recipe, derive a "
            "fresh pipeline from the stock one (type(stock).from_pipe(stock)) and apply to that"
        )


def _refuse_unmovable(pipe, slot: str) -> None:
    encoder = getattr(pipe, slot)
    if any(p.is_meta for p in encoder.parameters()):
        raise IncompatibleEncoderError(
            f"{slot} has weights on the meta device (sequential CPU offload or a device map); "
            "call apply_long_clip before enable_sequential_cpu_offload() / device mapping"
        )
    if getattr(encoder, "peft_config", None):
        raise IncompatibleEncoderError(
            f"{slot} has LoRA adapters loaded; call apply_long_clip first and load_lora_weights "
            "after it (or pipe.unload_lora_weights() before applying)"
        )


def _stretched(pipe, slot: str, max_length: int, keep: int, ratio: float | None) -> nn.Module:
    """``text_encoder_2`` reading ``max_length`` tokens: a stretched twin, or the encoder itself when
    it has the positions already (a pipeline saved after ``apply_long_clip``)."""
    return fit_encoder_length(getattr(pipe, slot), max_length, keep, ratio)


def _long_clip_encoder(pipe, slot: str, source, max_length: int, load_kwargs: dict) -> nn.Module:
    current = getattr(pipe, slot)
    parameter = next(current.parameters())
    if source is None:
        if position_limit(current) >= max_length:
            return fit_encoder_length(current, max_length)
        raise IncompatibleEncoderError(
            f"{slot} has {position_limit(current)} positions and no Long-CLIP source was given: pass "
            "one (hub id such as BeichenZhang/LongCLIP-L, a checkpoint file, a directory, or a "
            "CLIPTextModel)"
        )
    if isinstance(source, nn.Module):
        encoder = source
    else:
        encoder = load_text_encoder(source, torch_dtype=parameter.dtype, device=parameter.device, **load_kwargs)
    _check_fits(pipe, slot, encoder, max_length)
    fitted = fit_encoder_length(encoder, max_length)
    if fitted is source and (parameter.dtype, parameter.device) != _placement(source):
        # casting moves the caller's parameters in place: cast a twin, so that the caller's
        # encoder is left as it was whether or not the swap succeeds
        fitted = twin_sharing_weights(source)
    return fitted.to(device=parameter.device, dtype=parameter.dtype)


def _projection_width(encoder: nn.Module) -> int | None:
    projection = getattr(encoder, "text_projection", None)
    return projection.out_features if projection is not None else None


def _placement(module: nn.Module) -> tuple:
    parameter = next(module.parameters())
    return parameter.dtype, parameter.device


def _check_fits(pipe, slot: str, encoder: nn.Module, max_length: int) -> None:
    current = getattr(pipe, slot)
    accepted = drop_in_classes(current)
    if not isinstance(encoder, accepted):
        with_or_without = "with" if hasattr(current, "text_projection") else "without"
        raise IncompatibleEncoderError(
            f"{slot} takes a {' or '.join(cls.__name__ for cls in accepted)}, got a "
            f"{type(encoder).__name__}; load the Long-CLIP text encoder {with_or_without} projection "
            f"(load_text_encoder(src, with_projection={with_or_without == 'with'}))"
        )
    width, slot_width = text_config(encoder).hidden_size, text_config(current).hidden_size
    if width != slot_width:
        raise IncompatibleEncoderError(
            f"the encoder is {width} wide but {slot} of this {type(pipe).__name__} is {slot_width} wide "
            "(the UNet reads that width); "
            + (
                "SDXL's text_encoder_2 takes a Long-CLIP-G trained from OpenCLIP ViT-bigG/14 (1280 wide)"
                if slot == "text_encoder_2"
                else "SD1.x and SDXL take the CLIP-L sized Long-CLIP-L (768 wide, BeichenZhang/LongCLIP-L), "
                "not Long-CLIP-B (512)"
            )
        )
    projection, slot_projection = _projection_width(encoder), _projection_width(current)
    if projection != slot_projection:
        raise IncompatibleEncoderError(
            f"the encoder projects to {projection} features but {slot} of this {type(pipe).__name__} to "
            f"{slot_projection} (the UNet reads them as the pooled vector); export the Long-CLIP-G "
            "encoder from a model with the slot's projection (OpenCLIP ViT-bigG/14: 1280)"
        )
    positions = position_limit(encoder)
    if positions < max_length:
        raise IncompatibleEncoderError(
            f"the encoder has {positions} positions, fewer than max_length={max_length}; use a "
            "Long-CLIP encoder (248 positions), stretch this one (longclip-diffusers stretch), "
            "or lower max_length"
        )
    tokenizer = getattr(pipe, slot.replace("text_encoder", "tokenizer"))
    if len(tokenizer) > text_config(encoder).vocab_size:
        raise IncompatibleEncoderError(
            f"the tokenizer has {len(tokenizer)} tokens but the encoder only {text_config(encoder).vocab_size} "
            "embeddings (textual-inversion tokens loaded before?); call apply_long_clip before "
            "load_textual_inversion"
        )


def long_clip_pair(
    stock: DiffusionPipeline, source: str | os.PathLike | nn.Module | None = None, **options
) -> tuple[DiffusionPipeline, DiffusionPipeline]:
    """``(stock, long)``: ``stock`` untouched and a Long-CLIP copy of it sharing its UNet, VAE,
    scheduler config and weights (diffusers' ``from_pipe``), for side-by-side comparisons.

    ``options`` go to :func:`apply_long_clip`. Only the new text encoder (and the stretched
    ``text_encoder_2``'s position table) take extra memory.
    """
    long = type(stock).from_pipe(stock)
    return stock, apply_long_clip(long, source, **options)
