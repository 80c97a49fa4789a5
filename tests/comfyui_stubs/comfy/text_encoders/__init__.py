"""Stand-in for ``comfy.text_encoders`` (ComfyUI v0.3.64): the Flux.1 and SD3 CLIPs."""
