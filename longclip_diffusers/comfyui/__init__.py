"""The ComfyUI glue the nodes in ``demos/comfyui/`` build on: CONDITIONING from transformers
encoders (:mod:`.conditioning`) and the state dicts ComfyUI builds a 248-token CLIP from
(:mod:`.clip_state_dicts`). Nothing here imports ComfyUI."""
