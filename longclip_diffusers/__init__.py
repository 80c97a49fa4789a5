"""longclip-diffusers: Long-CLIP and TULIP text encoders for diffusers pipelines."""

from .errors import (
    CheckpointError,
    IncompatibleEncoderError,
    LongClipError,
    ModelNotAvailableError,
    OutputExistsError,
)
from .stretch import stretch_position_table, stretch_text_encoder, stretched_length
from .checkpoint import read_state_dict
from .convert import convert_checkpoint
from .atomic import atomic_output_dir, atomic_write_file
from .export import export_checkpoint, save_clip_model, save_model, save_text_encoder
from .loading import load_clip_model, load_text_encoder, load_tokenizer
from .tulip import (
    TulipConfig,
    TulipModel,
    TulipTextConfig,
    TulipTextModel,
    TulipTextModelWithProjection,
    convert_tulip_checkpoint,
    ntk_scaled_base,
    set_context_length,
)

__version__ = "0.1.0"
