"""One CLIP image preprocessing: the torch-only transform, the image processor saved beside a
model, and the processor evaluation reads back from that folder all give the same pixels."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from PIL import Image

from longclip_diffusers.evaluation.preprocessing import ProcessorTransform, image_transform_for
from longclip_diffusers.io.image_preprocessing import (
    ClipImageTransform,
    clip_image_processor,
    clip_image_processor_class,
)
from longclip_diffusers.tiny import tiny_clip_model


def random_image(width: int, height: int) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_saved_processor_and_the_torch_only_transform_resize_crop_and_normalise_alike(tmp_path):
    # 80 x 60 resizes to 42 x 32: a crop offset of whole pixels, which both round the same way
    clip_image_processor(32).save_pretrained(tmp_path)
    transform = image_transform_for(tiny_clip_model(), tmp_path)
    assert isinstance(transform, ProcessorTransform)
    image = random_image(80, 60)
    torch.testing.assert_close(transform(image), ClipImageTransform(size=32)(image), atol=1e-5, rtol=0)


def test_the_long_side_is_sized_as_the_processor_sizes_it_where_float_scaling_loses_a_pixel(tmp_path):
    # 98 x 49 to a short side of 32: 98 * (32 / 49) is 63.999..., the processor resizes to 64 x 32
    clip_image_processor(32).save_pretrained(tmp_path)
    transform = image_transform_for(tiny_clip_model(), tmp_path)
    image = random_image(98, 49)
    torch.testing.assert_close(transform(image), ClipImageTransform(size=32)(image), atol=1e-5, rtol=0)
    tall = image.transpose(Image.Transpose.TRANSPOSE)
    torch.testing.assert_close(transform(tall), ClipImageTransform(size=32)(tall), atol=1e-5, rtol=0)


def test_evaluation_reads_the_saved_processor_with_the_class_export_writes_and_no_warning(tmp_path):
    clip_image_processor(32).save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transform = image_transform_for(tiny_clip_model(), tmp_path)
    assert isinstance(transform, ProcessorTransform)
    assert type(transform.processor) is clip_image_processor_class()


def test_a_folder_without_a_processor_gets_the_torch_only_transform_at_the_vision_size(tmp_path):
    transform = image_transform_for(tiny_clip_model(), tmp_path)
    assert transform == ClipImageTransform(size=32)
