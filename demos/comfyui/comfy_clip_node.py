"""ComfyUI node: put Long-CLIP into a ComfyUI CLIP object, so ComfyUI's own nodes read 248 tokens.

The CLIP object of an SD1.x or SDXL checkpoint is rebuilt by ComfyUI's text-encoder loader
(``comfy.sd.load_text_encoder_state_dicts``) from Long-CLIP-L in place of clip_l and, for SDXL,
clip_g stretched to 248 positions (:mod:`longclip_diffusers.comfyui.clip_state_dicts`); ComfyUI sizes each
tower and its tokenizer from the 248-row position tables. Works only inside ComfyUI.
"""

from __future__ import annotations

from longclip_diffusers.comfyui.clip_state_dicts import comfy_long_clip_state_dicts

from .loader_node import CATEGORY, TEXT_ENCODER


class LongCLIPIntoCLIP:
    """CLIP (SD1.x or SDXL) + a Long-CLIP-L text encoder -> a CLIP reading 248 tokens."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "text_encoder": (TEXT_ENCODER,)}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Rebuilds the CLIP with Long-CLIP-L as clip_l (and SDXL's clip_g stretched to 248), so "
        "CLIP Text Encode and the other ComfyUI nodes read 248 tokens."
    )

    def apply(self, clip, text_encoder):
        try:
            import comfy.sd
            import folder_paths
        except ImportError as exc:
            raise RuntimeError(
                "Long-CLIP into CLIP needs ComfyUI's modules (comfy.sd, folder_paths): run it "
                "inside ComfyUI, or use the Long-CLIP text-encode nodes instead"
            ) from exc
        state_dicts = comfy_long_clip_state_dicts(clip.get_sd(), text_encoder.model)
        long_clip = comfy.sd.load_text_encoder_state_dicts(
            state_dicts=state_dicts,
            embedding_directory=folder_paths.get_folder_paths("embeddings"),
            clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION,
        )
        if getattr(clip, "layer_idx", None) is not None:
            # keep a "CLIP Set Last Layer" applied upstream
            long_clip.clip_layer(clip.layer_idx)
        return (long_clip,)
