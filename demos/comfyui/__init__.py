"""ComfyUI custom nodes for longclip-diffusers: 248-token prompts for SD1.5, SDXL, SD3 and Flux.1.

Install: link (or copy) this folder into ``ComfyUI/custom_nodes/`` under a name other than
``longclip_diffusers`` (e.g. ``longclip_diffusers_nodes``), and install the library into ComfyUI's
Python (``pip install -e /path/to/longclip-diffusers``). ComfyUI imports this file by path as a
package named after the folder and reads the two mappings below. Example workflows are in
``workflows/``; ``check_real_comfyui.py`` checks the nodes against a ComfyUI checkout.
"""

from .comfy_clip_node import LongCLIPIntoCLIP
from .encode_nodes import LongCLIPTextEncodeSD15, LongCLIPTextEncodeSDXL
from .loader_node import LongCLIPTextEncoderLoader

NODE_CLASS_MAPPINGS = {
    "LongCLIPTextEncoderLoader": LongCLIPTextEncoderLoader,
    "LongCLIPTextEncodeSD15": LongCLIPTextEncodeSD15,
    "LongCLIPTextEncodeSDXL": LongCLIPTextEncodeSDXL,
    "LongCLIPIntoCLIP": LongCLIPIntoCLIP,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LongCLIPTextEncoderLoader": "Load Long-CLIP Text Encoder",
    "LongCLIPTextEncodeSD15": "Long-CLIP Text Encode (SD1.5, 248 tokens)",
    "LongCLIPTextEncodeSDXL": "Long-CLIP Text Encode (SDXL, 248 tokens)",
    "LongCLIPIntoCLIP": "Long-CLIP into CLIP (248 tokens)",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
