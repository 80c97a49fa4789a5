"""WebDataset tar shards as training input: written by ``make-shards``, streamed, split by
process, resumed at the right sample, unreadable samples skipped and counted."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import torch
from training_helpers import tiny_training_argv
from transformers import CLIPModel

from longclip_diffusers.cli.main import main as cli
from longclip_diffusers.io.export import save_clip_model
from longclip_diffusers.io.image_preprocessing import ClipImageTransform
from longclip_diffusers.tiny import tiny_bigg_clip_model, tiny_clip_tokenizer, write_tiny_caption_set
from longclip_diffusers.training import read_records
from longclip_diffusers.training.data import Skipped
from longclip_diffusers.training.longclip import parse_longclip_args, train_longclip
from longclip_diffusers.training.shards import (
    ShardError,
    ShardSet,
    ShardStream,
    count_samples,
    expand_braces,
    iter_tar_samples,
)

PATTERN = "{00000..00003}.tar"


def test_brace_expansion_as_webdataset_patterns_use_it():
    assert expand_braces("s/{000..002}.tar") == ["s/000.tar", "s/001.tar", "s/002.tar"]
    assert expand_braces("{8..10}.tar") == ["8.tar", "9.tar", "10.tar"]
    assert expand_braces("{a,b}/{0..1}.tar") == ["a/0.tar", "a/1.tar", "b/0.tar", "b/1.tar"]
    assert expand_braces("plain.tar") == ["plain.tar"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    save_clip_model(tiny_bigg_clip_model(), root / "base", tokenizer=tiny_clip_tokenizer())
    captions = write_tiny_caption_set(root / "data", count=14, long_words=40)
    (root / "data" / "image_0005.png").write_bytes(b"not an image")
    assert (
        cli(
            [
                "make-shards",
                "--data",
                str(captions),
                "--image-root",
                str(root / "data"),
                "--output-dir",
                str(root / "shards"),
                "--samples-per-shard",
                "4",
            ]
        )
        == 0
    )
    return root, captions


def test_make_shards_writes_image_and_caption_json_per_sample_and_lists_unreadable_images(setup):
    root, captions = setup
    shards = ShardSet.open(str(root / "shards" / PATTERN), show_progress=False)
    assert shards.counts == (4, 3, 4, 2)  # 4 pairs each, image_0005 left out of the second
    records = [r for r in read_records(captions) if r.image != "image_0005.png"]
    samples = [files for path in shards.paths for _, _, files in iter_tar_samples(path)]
    assert [json.loads(files["json"])["caption"] for files in samples] == [r.caption for r in records]
    assert [json.loads(files["json"])["short_caption"] for files in samples] == [r.short_caption for r in records]
    assert samples[0]["png"] == (captions.parent / records[0].image).read_bytes()
    skipped = json.loads((root / "shards" / "skipped.json").read_text())
    assert [entry["image"].rsplit("/", 1)[-1] for entry in skipped] == ["image_0005.png"]


def test_make_shards_refuses_to_write_over_shards(setup, capsys):
    root, captions = setup
    assert cli(["make-shards", "--data", str(captions), "--output-dir", str(root / "shards")]) == 1
    assert "already holds tar shards" in capsys.readouterr().err


def test_a_pattern_naming_a_missing_shard_is_one_clear_error(setup):
    with pytest.raises(ShardError, match="1 of the 5 shard"):
        ShardSet.open(str(setup[0] / "shards" / "{00000..00004}.tar"), show_progress=False)


def _captions(stream) -> list[str]:
    return [item if isinstance(item, Skipped) else item[1] for item in stream]


def test_processes_stream_disjoint_shards_and_each_epoch_shuffles_them(setup):
    shards = ShardSet.open(str(setup[0] / "shards" / PATTERN), show_progress=False)
    first = [shards.assignment(seed=0, epoch=0, num_processes=2, rank=r) for r in range(2)]
    assert sorted(first[0] + first[1]) == [0, 1, 2, 3]
    orders = {tuple(shards.assignment(seed=0, epoch=e, num_processes=1, rank=0)) for e in range(6)}
    assert len(orders) > 1
    # every process takes the same number of full batches: the smaller share decides
    shares = [sum(shards.counts[i] for i in part) for part in first]
    assert shards.batches_per_epoch(0, 0, 2, 2) == min(shares) // 2


def test_a_stream_started_at_a_sample_continues_exactly_where_the_whole_stream_was(setup):
    shards = ShardSet.open(str(setup[0] / "shards" / PATTERN), show_progress=False)
    order = shards.assignment(seed=3, epoch=1, num_processes=1, rank=0)
    transform = ClipImageTransform(32)
    whole = list(ShardStream(shards, order, 0, 13, transform))
    resumed = list(ShardStream(shards, order, 6, 13, transform))
    assert _captions(resumed) == _captions(whole)[6:]
    assert torch.equal(resumed[0][0], whole[6][0])


def test_two_dataloader_workers_give_the_samples_in_stream_order(setup):
    from torch.utils.data import DataLoader

    shards = ShardSet.open(str(setup[0] / "shards" / PATTERN), show_progress=False)
    stream = ShardStream(shards, [2, 0, 1, 3], 1, 12, None)
    loaded = list(DataLoader(stream, batch_size=None, num_workers=2, collate_fn=lambda item: item))
    assert _captions(loaded) == _captions(stream)


def test_an_unreadable_sample_in_a_shard_is_skipped_with_its_reason(tmp_path):
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as archive:
        for name, payload in (("a.png", b"broken"), ("a.json", b'{"caption": "x. y"}'), ("b.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    shards = ShardSet((path,), (count_samples(path),))
    items = list(ShardStream(shards, [0], 0, 2, ClipImageTransform(32)))
    assert [type(item) for item in items] == [Skipped, Skipped]
    assert items[0].image == "bad.tar/a" and "UnidentifiedImageError" in items[0].reason
    assert "no 'caption'" in items[1].reason


def _train(setup, name: str, *extra: str):
    root, _ = setup
    return train_longclip(
        parse_longclip_args(
            tiny_training_argv(root / "base", root / "shards" / PATTERN, root / name, *extra, batch_size=2, lr="1e-3")
        )
    )


@pytest.fixture(scope="module")
def uninterrupted(setup):
    return _train(setup, "whole", "--max-steps", "8", "--save-every", "3")


@pytest.mark.slow
def test_training_on_shards_resumes_at_the_right_sample(setup, uninterrupted):
    root, _ = setup
    # 13 samples, batch 2: 6 steps per epoch, so step 3 is mid-epoch and steps 7-8 in epoch 1
    progress = json.loads((root / "whole" / "checkpoints" / "step-3" / "progress.json").read_text())
    assert (progress["epoch"], progress["batch_in_epoch"]) == (0, 3)
    resumed = _train(setup, "resumed", "--max-steps", "8", "--resume-from", str(root / "whole/checkpoints/step-3"))
    assert resumed.losses[3:] == pytest.approx(uninterrupted.losses[3:], rel=1e-5)
    whole, again = CLIPModel.from_pretrained(root / "whole"), CLIPModel.from_pretrained(root / "resumed")
    for key, tensor in whole.state_dict().items():
        if key.endswith("k_proj.bias"):
            continue  # true gradient 0: Adam turns its rounding noise into steps
        torch.testing.assert_close(again.state_dict()[key], tensor, atol=1e-5, rtol=1e-4, msg=key)


def test_epochs_of_tar_shards_count_the_smallest_process_share(setup):
    root, _ = setup
    args = parse_longclip_args(
        ["--base-model", "b", "--data", str(root / "shards" / PATTERN), "--output-dir", "o", "--batch-size", "2"]
    )
    shards = ShardSet.open(args.data, show_progress=False)
    assert shards.total_steps(args, num_processes=1) == 6
    args.epochs = 2
    assert shards.total_steps(args, num_processes=2) == sum(shards.batches_per_epoch(0, e, 2, 2) for e in (0, 1))


@pytest.mark.slow
def test_cached_features_of_tar_shards_train_like_the_frozen_vision_run_on_the_shards(setup):
    root, _ = setup
    cache = root / "tar-cache"
    command = ["cache-image-features", "--base-model", str(root / "base"), "--data", str(root / "shards" / PATTERN)]
    assert cli([*command, "--output-dir", str(cache), "--dtype", "float32", "--num-workers", "0", "--cpu"]) == 0
    frozen = _train(setup, "tar-frozen", "--max-steps", "3", "--freeze-vision")
    cached = _train(setup, "tar-cached", "--max-steps", "3", "--freeze-vision", "--image-features", str(cache))
    assert cached.losses == pytest.approx(frozen.losses, rel=1e-5)
