"""How a TULIP encoder takes the place of a CLIP text encoder in a diffusers pipeline slot.

``TulipTextModel`` has ``CLIPTextModel``'s interface and outputs (and the ``WithProjection``
pair likewise), so a slot that holds one accepts the other; what differs is the length, which
for rotary positions is a setting rather than a table (docs/tulip.md; fitted by
:func:`~longclip_diffusers.length.fit_length.fit_encoder_length`).
"""

from __future__ import annotations

from torch import nn
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from .modeling import TulipTextModel, TulipTextModelWithProjection

_INTERCHANGEABLE = (
    (CLIPTextModel, TulipTextModel),
    (CLIPTextModelWithProjection, TulipTextModelWithProjection),
)


def drop_in_classes(current: nn.Module) -> tuple[type, ...]:
    """The encoder classes that can take the slot ``current`` holds: a CLIP text encoder and its
    TULIP counterpart; any other module only its own class."""
    for pair in _INTERCHANGEABLE:
        if isinstance(current, pair):
            return pair
    return (type(current),)
