"""Models and data folders shared by the evaluation tests.

``ColourClip`` is a stand-in CLIP whose answers are known: an image's feature is the one-hot of
its dominant colour channel, a text's the one-hot of the first colour word among its tokens (or
of a fourth "no colour" slot that matches no image). With it, a whole evaluation (loading,
preprocessing, tokenizing, truncating, batching, scoring) must come out exactly right, so any
mix-up of order, pairing or length shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from longclip_diffusers.evaluation import EvalModel
from longclip_diffusers.io.export import save_clip_model
from longclip_diffusers.io.image_preprocessing import ClipImageTransform
from longclip_diffusers.tiny import tiny_clip_model, tiny_clip_tokenizer

COLOURS = ("red", "green", "blue")
RGB = {"red": (230, 10, 10), "green": (10, 230, 10), "blue": (10, 10, 230)}


class ColourClip(nn.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the model a device and dtype
        self.colour_ids = torch.tensor([tokenizer.convert_tokens_to_ids(f"{c}</w>") for c in COLOURS])
        self.config = SimpleNamespace(max_position_embeddings=77)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.one_hot(pixel_values.mean(dim=(2, 3)).argmax(dim=1), len(COLOURS) + 1).float()

    def get_text_features(self, input_ids: torch.Tensor, attention_mask=None) -> torch.Tensor:
        hits = input_ids.unsqueeze(-1) == self.colour_ids
        positions = torch.arange(input_ids.shape[1]).unsqueeze(1)
        first = torch.where(hits, positions, input_ids.shape[1]).amin(dim=1)
        colour = torch.where(hits.any(dim=(1, 2)), first.argmin(dim=1), len(COLOURS))
        return F.one_hot(colour, len(COLOURS) + 1).float()


def colour_eval_model() -> EvalModel:
    tokenizer = tiny_clip_tokenizer()
    return EvalModel("colour", ColourClip(tokenizer), tokenizer, ClipImageTransform(size=8))


def save_tiny_clip(path: Path, positions: int = 248) -> Path:
    """A random tiny ``CLIPModel`` saved with its tokenizer and image processor config."""
    model = tiny_clip_model(max_position_embeddings=positions)
    return save_clip_model(model, path, tokenizer=tiny_clip_tokenizer(positions))


def write_image(path: Path, colour: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 9), RGB[colour]).save(path)
    return path


def write_urban1k(root: Path, pairs: list[tuple[str, str]]) -> Path:
    """Urban-1k layout: ``image/<i>.jpg`` of ``colour`` + ``caption/<i>.txt`` holding ``text``."""
    (root / "caption").mkdir(parents=True, exist_ok=True)
    for i, (colour, text) in enumerate(pairs):
        write_image(root / "image" / f"{i:03d}.jpg", colour)
        (root / "caption" / f"{i:03d}.txt").write_text(text + "\n")
    return root


def write_coco(root: Path, images: list[tuple[str, list[str]]]) -> Path:
    """COCO val2017 layout: one image per colour, its captions in captions_val2017.json."""
    annotations = {"images": [], "annotations": []}
    for image_id, (colour, captions) in enumerate(images, 1):
        write_image(root / "val2017" / f"{image_id:012d}.jpg", colour)
        annotations["images"].append({"id": image_id, "file_name": f"{image_id:012d}.jpg"})
        annotations["annotations"] += [{"image_id": image_id, "caption": c} for c in captions]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps(annotations))
    return root
