"""Stand-in for ComfyUI's ``comfy`` package (Comfy-Org/ComfyUI v0.3.64, commit a125cd8), for the
node tests in CI, where ComfyUI is not installed.

It has the part of ComfyUI the nodes in ``demos/comfyui`` touch, written from ComfyUI's observable
behaviour (no ComfyUI code): a ``CLIP`` object with its patcher (:mod:`.sd`, :mod:`.model_patcher`),
the text-encoder loader ``load_text_encoder_state_dicts``, the tokenizers' weighting and chunking
and the CLIP families' encoders (:mod:`.sd1_clip`, :mod:`.sdxl_clip`, :mod:`.text_encoders`).
``demos/comfyui/check_real_comfyui.py`` runs each imitated behaviour on this stand-in and on a real
ComfyUI checkout and fails where they differ. Deliberate differences, so tiny random models work:
towers are sized from their weights (ComfyUI: from fixed configs of real size), compute in
float32, the T5 is a stand-in, ``embedding:name`` is not parsed, and only ``"diff"`` patches
(a weight delta) are applied. Imports inside the package are relative, so the check script can
load it under another name beside the real ``comfy``.
"""
