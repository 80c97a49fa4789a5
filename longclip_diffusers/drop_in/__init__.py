"""The diffusers drop-in: :func:`~.swap_encoders.apply_long_clip` swaps 248-token encoders into
a pipeline (SD1.5, SDXL, Flux.1, SD3), by the pipeline kind read from its components
(:mod:`.pipeline_kinds`), with the hidden-layer recipes of :mod:`.layer_recipes` and the
``encode_prompt`` of :mod:`.encode_prompt`; :mod:`.pipeline_classes` holds the
``LongClip*Pipeline`` classes."""
