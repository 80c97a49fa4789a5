"""The ``encode_prompt`` a patched pipeline uses: diffusers' own, plus what it cannot do.

:func:`~longclip_diffusers.apply_long_clip` installs a :class:`LongClipPromptEncoder` on the
pipeline instance. Every call is handed to the pipeline class's own ``encode_prompt`` (negative
prompts, ``num_images_per_prompt``, dtype, LoRA scale all stay diffusers'), after this class has
filled in the embeddings diffusers would get wrong:

* SD1.x with ``clip_skip``: diffusers reaches ``text_encoder.text_model.final_layer_norm``, which
  transformers 5's flat ``CLIPTextModel`` lacks (docs/sdxl-recipes.md);
* SDXL with the ``"longclip"`` recipe (see :mod:`longclip_diffusers.drop_in.layer_recipes`).

It also warns, naming the words, when a prompt runs past the encoders' length.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings

import torch

from ..length.tokens import token_report
from .layer_recipes import check_recipe, normalized_layer, sdxl_layer
from .pipeline_kinds import PipelineSlots


class LongClipPromptEncoder:
    """Callable replacing ``pipe.encode_prompt``; its presence marks a patched pipeline."""

    def __init__(self, pipe, slots: PipelineSlots, recipe: str = "standard"):
        self.pipe = pipe
        self.slots = slots
        self.recipe = check_recipe(recipe)
        self.original = type(pipe).encode_prompt.__get__(pipe)
        self.signature = inspect.signature(self.original)

    def __call__(self, *args, **kwargs):
        call = self.signature.bind(*args, **kwargs)
        call.apply_defaults()
        arguments = call.arguments
        self._warn_about_dropped_words(arguments)
        if self.slots.kind == "sd":
            if arguments.get("clip_skip") is not None:
                self._fill_sd_clip_skip(arguments)
        elif self.recipe == "longclip":
            self._fill_sdxl_longclip(arguments)
        return self.original(*call.args, **call.kwargs)

    def _fill_sd_clip_skip(self, arguments: dict) -> None:
        if arguments["prompt_embeds"] is None:
            clip_skip = arguments["clip_skip"]
            with self._lora_scaled(arguments.get("lora_scale")):
                hidden, _ = self._encode(
                    _as_list(arguments["prompt"]),
                    "tokenizer",
                    "text_encoder",
                    arguments["device"],
                    lambda encoder, states: normalized_layer(encoder, states, clip_skip),
                )
            arguments["prompt_embeds"] = hidden
        # diffusers encodes negative prompts without clip_skip; the filled-in prompt keeps it
        arguments["clip_skip"] = None

    def _fill_sdxl_longclip(self, arguments: dict) -> None:
        device = arguments.get("device") or self.pipe._execution_device
        clip_skip = arguments.get("clip_skip")
        arguments["clip_skip"] = None

        def select(encoder, states):
            return sdxl_layer(self.recipe, encoder, states, clip_skip)

        with self._lora_scaled(arguments.get("lora_scale")):
            if arguments["prompt_embeds"] is None:
                prompt = _as_list(arguments["prompt"])
                prompt_2 = _as_list(arguments.get("prompt_2") or prompt)
                embeds, pooled = self._encode_both(prompt, prompt_2, device, select, length=None)
                arguments["prompt_embeds"] = embeds
                if arguments["pooled_prompt_embeds"] is None:
                    arguments["pooled_prompt_embeds"] = pooled
            zero_negative = arguments["negative_prompt"] is None and self.pipe.config.force_zeros_for_empty_prompt
            if (
                arguments["do_classifier_free_guidance"]
                and arguments["negative_prompt_embeds"] is None
                and not zero_negative
            ):
                batch = arguments["prompt_embeds"].shape[0]
                negative = _batched(arguments["negative_prompt"] or "", batch)
                negative_2 = _batched(arguments.get("negative_prompt_2") or negative, batch)
                length = arguments["prompt_embeds"].shape[1]
                embeds, pooled = self._encode_both(negative, negative_2, device, select, length)
                arguments["negative_prompt_embeds"] = embeds
                if arguments["negative_pooled_prompt_embeds"] is None:
                    arguments["negative_pooled_prompt_embeds"] = pooled

    def _encode_both(self, texts, texts_2, device, select, length):
        """Concatenate the encoders' conditionings on the feature axis, as diffusers does; the
        pooled vector is the projected one of ``text_encoder_2``. The refiner, like diffusers,
        feeds ``texts`` to its only encoder."""
        parts, pooled = [], None
        for text, slot in zip((texts, texts_2), self.slots.encoder_slots):
            hidden, pooled = self._encode(
                text, slot.replace("text_encoder", "tokenizer"), slot, device, select, length
            )
            parts.append(hidden)
        return torch.cat(parts, dim=-1), pooled

    def _encode(self, texts, tokenizer_slot, encoder_slot, device, select, length=None):
        # diffusers' submodules load on first use so that importing this package stays quick
        from diffusers.loaders import TextualInversionLoaderMixin

        tokenizer = getattr(self.pipe, tokenizer_slot)
        encoder = getattr(self.pipe, encoder_slot)
        if isinstance(self.pipe, TextualInversionLoaderMixin):
            texts = self.pipe.maybe_convert_prompt(texts, tokenizer)
        input_ids = tokenizer(
            texts,
            padding="max_length",
            max_length=length or tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        output = encoder(input_ids.to(device), output_hidden_states=True)
        pooled = output[0] if output[0].ndim == 2 else None
        return select(encoder, output.hidden_states), pooled

    @contextlib.contextmanager
    def _lora_scaled(self, lora_scale):
        """Scale text-encoder LoRA layers while this class encodes, as diffusers does around its
        own encoding."""
        from diffusers.utils import USE_PEFT_BACKEND, scale_lora_layers, unscale_lora_layers

        encoders = [getattr(self.pipe, slot) for slot in self.slots.encoder_slots]
        active = lora_scale is not None and USE_PEFT_BACKEND
        if active:
            for encoder in encoders:
                scale_lora_layers(encoder, lora_scale)
        try:
            yield
        finally:
            if active:
                for encoder in encoders:
                    unscale_lora_layers(encoder, lora_scale)

    def _warn_about_dropped_words(self, arguments: dict) -> None:
        tokenizer = getattr(self.pipe, self.slots.tokenizer_slots[0])
        texts = []
        for name in ("prompt", "prompt_2", "negative_prompt", "negative_prompt_2"):
            value = arguments.get(name)
            texts += [t for t in _as_list(value) if t not in texts] if value else []
        for text in texts:
            report = token_report(text, tokenizer, max_length=tokenizer.model_max_length)
            if report.dropped:
                words = " ".join(word.text for word in report.dropped)
                warnings.warn(
                    f"the prompt has {report.token_count} tokens; the text encoders read "
                    f"{tokenizer.model_max_length - 2}, so these {len(report.dropped)} words are "
                    f"dropped: '{words}'. Shorten the prompt, or encode it in {tokenizer.model_max_length}"
                    "-token chunks with compel (CompelForSD / CompelForSDXL) and pass prompt_embeds.",
                    UserWarning,
                    stacklevel=3,
                )


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value or [])


def _batched(value, batch: int) -> list:
    return batch * [value] if isinstance(value, str) else list(value)
