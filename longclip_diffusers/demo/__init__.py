"""The Gradio long-prompt studio (:mod:`.gradio_app`), started by ``longclip-diffusers demo``.

It needs the ``[demo]`` extra; nothing else in the package imports it.
"""
