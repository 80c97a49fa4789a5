"""longclip-diffusers: Long-CLIP and TULIP text encoders for diffusers pipelines."""

from .errors import (
    CheckpointError,
    IncompatibleEncoderError,
    LongClipError,
    ModelNotAvailableError,
    OutputExistsError,
)
from .stretch import stretch_position_table, stretch_text_encoder, stretched_length

__version__ = "0.1.0"
