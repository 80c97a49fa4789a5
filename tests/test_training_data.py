"""Training data: caption files, the CLIP image transform, skipping bad images, batch order."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from longclip_diffusers.io.image_preprocessing import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from longclip_diffusers.tiny import tiny_clip_tokenizer, write_tiny_caption_set
from longclip_diffusers.training import (
    CaptionBatchCollator,
    ClipImageTransform,
    ImageCaptionDataset,
    ShardedBatchSampler,
    first_sentence,
    read_records,
)
from longclip_diffusers.training.data import Skipped, make_loader


def test_short_caption_is_the_text_before_the_first_full_stop_and_space():
    assert first_sentence("A cat on a mat. It is red. The end.") == "A cat on a mat"
    assert first_sentence("No full stop here") == "No full stop here"
    assert first_sentence("v1.5 model. More") == "v1.5 model"


def test_sharegpt4v_json_takes_the_second_turn_with_newlines_as_spaces(tmp_path):
    entry = {
        "id": "x",
        "image": "sam/1.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nDescribe"},
            {"from": "gpt", "value": "A dog runs.\nIt is brown."},
        ],
    }
    path = tmp_path / "share.json"
    path.write_text(json.dumps([entry]))
    (record,) = read_records(path)
    assert (record.image, record.caption, record.short_caption) == (
        "sam/1.jpg",
        "A dog runs. It is brown.",
        "A dog runs",
    )


def test_jsonl_and_csv_read_image_caption_and_optional_short_caption(tmp_path):
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(json.dumps({"image": "a.png", "caption": "One. Two."}) + "\n\n")
    csv_path = tmp_path / "c.csv"
    csv_path.write_text('image,caption,short_caption\nb.png,"Long, long. Text",short one\n')
    assert read_records(jsonl)[0].short_caption == "One"
    (record,) = read_records(csv_path)
    assert (record.image, record.caption, record.short_caption) == ("b.png", "Long, long. Text", "short one")


def test_caption_files_with_problems_fail_with_the_fix_named(tmp_path):
    (tmp_path / "c.txt").write_text("x")
    with pytest.raises(ValueError, match="use .json"):
        read_records(tmp_path / "c.txt")
    (tmp_path / "c.jsonl").write_text(json.dumps({"image": "a.png"}))
    with pytest.raises(ValueError, match="entry 1: needs a 'caption'"):
        read_records(tmp_path / "c.jsonl")
    with pytest.raises(FileNotFoundError, match="--data"):
        read_records(tmp_path / "missing.json")


def test_clip_transform_resizes_short_side_crops_the_centre_and_normalises():
    pixels = np.zeros((40, 80, 3), dtype=np.uint8)
    pixels[:, 20:60] = 255  # the centre square after resizing 40x80 -> 32x64 is white
    out = ClipImageTransform(size=32)(Image.fromarray(pixels))
    assert out.shape == (3, 32, 32)
    white = (1 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)
    torch.testing.assert_close(out[:, 4:28, 4:28].mean(dim=(1, 2)), white, atol=1e-4, rtol=0)


def test_missing_and_corrupt_images_are_skipped_by_the_collator(tmp_path):
    captions = write_tiny_caption_set(tmp_path, count=4)
    (tmp_path / "image_0001.png").write_bytes(b"not a png")
    (tmp_path / "image_0002.png").unlink()
    dataset = ImageCaptionDataset(read_records(captions), tmp_path, ClipImageTransform(32))
    assert isinstance(dataset[1], Skipped) and isinstance(dataset[2], Skipped)
    batch = CaptionBatchCollator(tiny_clip_tokenizer(), 77)([dataset[i] for i in range(4)])
    assert batch["size"] == 2 and batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["input_ids"].shape == batch["short_input_ids"].shape == (2, 77)
    assert sorted(s.image.rsplit("/", 1)[-1] for s in batch["skipped"]) == ["image_0001.png", "image_0002.png"]


def test_two_process_shards_make_up_the_one_process_batch_of_twice_the_size():
    one = list(ShardedBatchSampler(20, 8, 1, 0, seed=3, epoch=0))
    shards = [list(ShardedBatchSampler(20, 4, 2, rank, seed=3, epoch=0)) for rank in (0, 1)]
    assert len(one) == 2
    assert [a + b for a, b in zip(*shards)] == one
    assert one != list(ShardedBatchSampler(20, 8, 1, 0, seed=3, epoch=1))


def test_sampler_started_at_a_batch_continues_the_same_epoch_order():
    full = list(ShardedBatchSampler(30, 4, 1, 0, seed=0, epoch=2))
    assert list(ShardedBatchSampler(30, 4, 1, 0, seed=0, epoch=2, start_batch=3)) == full[3:]


def test_images_decode_in_worker_processes_the_same_as_in_process(tmp_path):
    captions = write_tiny_caption_set(tmp_path, count=6)
    dataset = ImageCaptionDataset(read_records(captions), tmp_path, ClipImageTransform(32))
    collator = CaptionBatchCollator(tiny_clip_tokenizer(), 77, with_short=False)
    batches = [[0, 1, 2], [3, 4, 5]]
    inline = list(make_loader(dataset, batches, collator, num_workers=0))
    workers = list(make_loader(dataset, batches, collator, num_workers=2))
    for a, b in zip(inline, workers):
        assert torch.equal(a["pixel_values"], b["pixel_values"])
        assert torch.equal(a["input_ids"], b["input_ids"])
        assert b["short_input_ids"] is None
