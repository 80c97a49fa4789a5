"""The models the command line and the demos use when none is named."""

from __future__ import annotations

#: The diffusers pipeline generated with by default: SDXL base, whose two CLIP encoders both get
#: 248 tokens (REFERENCE.md section 6).
DEFAULT_PIPELINE = "stabilityai/stable-diffusion-xl-base-1.0"
#: The Long-CLIP encoder swapped in by default: the CLIP-L sized release, as wide as SD's slot.
DEFAULT_LONG_CLIP = "BeichenZhang/LongCLIP-L"
