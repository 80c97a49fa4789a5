"""The released Long-CLIP Python API on this project's converted transformers models.

Code written for the official repository (``from model import longclip``) runs with only its
import line changed to ``from longclip_diffusers import longclip``::

    model, preprocess = longclip.load("longclip-L.pt", device=device)
    text = longclip.tokenize(["a long caption ..."]).to(device)
    image = preprocess(Image.open("photo.png")).unsqueeze(0).to(device)
    with torch.no_grad():
        image_features = model.encode_image(image)
        text_features = model.encode_text(text)
        logits_per_image, logits_per_text = model(image, text)

Same inputs and outputs as the released functions; the model behind them is the transformers
``CLIPModel`` that :func:`~longclip_diffusers.load_clip_model` converts (docs/longclip-api.md).
"""

from .loading import load
from .model import LongCLIP
from .tokenization import tokenize

__all__ = ["LongCLIP", "load", "tokenize"]
