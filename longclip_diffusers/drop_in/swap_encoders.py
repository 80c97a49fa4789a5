"""``apply_long_clip``: give an SD1.x, SDXL, Flux.1 or SD3 diffusers pipeline 248-token CLIP
text encoders.

What changes, decided by the pipeline's components (:mod:`longclip_diffusers.drop_in.pipeline_kinds`):

* the CLIP-L ``text_encoder`` (SD1.x, SDXL base, Flux.1, SD3) is replaced by the Long-CLIP
  encoder, with its text projection where the slot has one (SD3);
* the OpenCLIP bigG ``text_encoder_2`` (SDXL base and refiner, SD3) is replaced by a trained
  Long-CLIP-G encoder when one is given (``text_encoder_2=``), else stretched with
  knowledge-preserved stretching, no training (docs/stretching.md); SDXL's pooled vector comes
  from it. Every CLIP encoder then has 248 positions, the only mix that works: SDXL and SD3
  concatenate the two CLIPs' hidden states feature by feature, token by token
  (docs/sdxl-recipes.md, docs/sd3-flux.md);
* the CLIP tokenizers read ``max_length`` tokens, and so does ``pipe.tokenizer_max_length``,
  which Flux and SD3 read once, in ``__init__`` (docs/sd3-flux.md). T5 and its
  ``max_sequence_length`` are left as they are;
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
from ..length.fit_length import fit_encoder_length, position_limit, reads_length
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
        pipe: a diffusers SD1.x, SDXL, SDXL-refiner, Flux.1 or SD3 / SD3.5 pipeline of any task
            (text-to-image, img2img, inpaint, ControlNet, Fill, Kontext, ...).
        source: the Long-CLIP-L encoder for the ``text_encoder`` slot: a ``CLIPTextModel``, or a
            ``CLIPTextModelWithProjection`` for SD3's slot (or their TULIP counterparts, which
            have no position cap), or anything :func:`~longclip_diffusers.load_text_encoder`
            takes (hub id, ``.pt`` / ``.safetensors`` file, transformers directory; loaded with
            projection where the slot has one). It is cast to the replaced encoder's dtype and
            device. May be None for a refiner, or when ``text_encoder`` already has
            ``max_length`` positions (a pipeline saved after ``apply_long_clip``).
        recipe: ``"standard"`` (diffusers' layers, what the UNet or transformer was trained on)
            or ``"longclip"`` (the released Long-CLIP SDXL code; not for SD3); see
            :mod:`longclip_diffusers.drop_in.layer_recipes`.
        max_length: tokens the CLIP tokenizers pass on (at most the encoders' positions).
        keep, ratio: knowledge-preserved stretching of ``text_encoder_2`` (Long-CLIP: 20, 4;
            ratio None fits a ``max_length`` above 248 exactly) when no ``text_encoder_2`` is given.
        text_encoder_2: a Long-CLIP-G encoder for SDXL's second slot (base and refiner) in place
            of stretching it: a ``CLIPTextModelWithProjection`` as wide as the slot's with the
            same projection width (the pooled vector), e.g. what ``train_longclip.py`` exports
            from ViT-bigG/14, or anything :func:`~longclip_diffusers.load_text_encoder` takes
            (loaded ``with_projection=True``).
        **load_kwargs: passed to ``load_text_encoder`` (``cache_dir``, ...).

    Raises:
        IncompatibleEncoderError: the pipeline has no CLIP text encoder, is already patched, the
            recipe does not apply to it, or the encoder does not fit (width, projection,
            positions, vocabulary); the pipeline is left unchanged.
    """
    check_recipe(recipe)
    slots = detect_slots(pipe)
    check_recipe(recipe, slots.kind)
    _refuse_patched(pipe)
    for slot in _slots_to_replace(pipe, slots, source, max_length):
        _refuse_unmovable(pipe, slot)

    replacements: dict[str, object] = {}
    if slots.stretched_slot and text_encoder_2 is not None:
        replacements[slots.stretched_slot] = _long_clip_encoder(
            pipe, slots.stretched_slot, text_encoder_2, max_length, load_kwargs
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
    _swap(pipe, slots, replacements, recipe, max_length)
    return pipe


def _swap(pipe, slots: PipelineSlots, replacements: dict, recipe: str, max_length: int) -> None:
    previous = {slot: getattr(pipe, slot) for slot in replacements}
    # Flux and SD3 copy the tokenizer's length into this attribute once, in __init__, and pad
    # both CLIP tokenizers' input to it (docs/sd3-flux.md)
    previous_length = pipe.__dict__.get("tokenizer_max_length")
    offload_device = getattr(pipe, "_offload_device", None) if getattr(pipe, "_all_hooks", None) else None
    try:
        pipe.register_modules(**replacements)
        if previous_length is not None:
            pipe.tokenizer_max_length = max_length
        pipe.encode_prompt = LongClipPromptEncoder(pipe, slots, recipe)
        if offload_device is not None:
            # new modules need accelerate's hooks, in the pipeline's offload order
            pipe.enable_model_cpu_offload(device=offload_device)
    except BaseException:
        pipe.register_modules(**previous)
        if previous_length is not None:
            pipe.tokenizer_max_length = previous_length
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


def _slots_to_replace(pipe, slots: PipelineSlots, source, max_length: int) -> list[str]:
    """The encoder slots that get a new module: the CLIP-L slot when a source is given or its
    encoder is too short, the stretched slot when its encoder is too short. An encoder that reads
    ``max_length`` tokens already (a pipeline derived from, or saved after, a patched one) stays
    in place with its LoRA adapters and offload hooks."""
    replaced = []
    if slots.long_clip_slot and (
        source is not None or not reads_length(getattr(pipe, slots.long_clip_slot), max_length)
    ):
        replaced.append(slots.long_clip_slot)
    if slots.stretched_slot and not reads_length(getattr(pipe, slots.stretched_slot), max_length):
        replaced.append(slots.stretched_slot)
    return replaced


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
        encoder = load_text_encoder(
            source,
            with_projection=hasattr(current, "text_projection"),
            torch_dtype=parameter.dtype,
            device=parameter.device,
            **load_kwargs,
        )
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
    projection = hasattr(current, "text_projection")
    if not isinstance(encoder, accepted):
        raise IncompatibleEncoderError(
            f"{slot} takes a {' or '.join(cls.__name__ for cls in accepted)}, got a "
            f"{type(encoder).__name__}; load the Long-CLIP text encoder {'with' if projection else 'without'} "
            f"projection (load_text_encoder(src, with_projection={projection}))"
        )
    # SDXL's and SD3's text_encoder_2 is OpenCLIP bigG; every other slot is CLIP-L sized
    fix = (
        "the bigG slot (text_encoder_2) takes a Long-CLIP-G trained from OpenCLIP ViT-bigG/14 (1280 wide, "
        "projection 1280)"
        if slot == "text_encoder_2"
        else "SD1.x, SDXL, Flux.1 and SD3 take the CLIP-L sized Long-CLIP-L (768 wide, BeichenZhang/LongCLIP-L), "
        "not Long-CLIP-B (512)"
    )
    width, slot_width = text_config(encoder).hidden_size, text_config(current).hidden_size
    if width != slot_width:
        raise IncompatibleEncoderError(
            f"the encoder is {width} wide but {slot} of this {type(pipe).__name__} is {slot_width} wide "
            f"(the UNet or transformer reads that width); {fix}"
        )
    if projection and _projection_width(encoder) != _projection_width(current):
        raise IncompatibleEncoderError(
            f"the encoder projects to {_projection_width(encoder)} features but {slot} of this "
            f"{type(pipe).__name__} to {_projection_width(current)} (its pooled vector is read at that width); "
            f"{fix}"
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
