"""Cached image features (``cache-image-features``, ``--image-features``) train exactly like the
uncached frozen-vision run, without the vision tower, and the cache is resumable and checked."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open
from training_helpers import tiny_training_argv
from transformers import CLIPModel, CLIPTextModelWithProjection, CLIPTokenizer

from longclip_diffusers.cli.main import main as cli
from longclip_diffusers.io.export import save_clip_model
from longclip_diffusers.tiny import tiny_bigg_clip_model, tiny_clip_tokenizer, write_tiny_caption_set
from longclip_diffusers.training import ContrastiveFeatures, pcm_loss, prepare_longclip_model, read_records
from longclip_diffusers.training.data import Skipped
from longclip_diffusers.training.feature_cache import (
    CachedFeatureDataset,
    CacheManifest,
    FeatureCache,
    FeatureCacheError,
    unit_file,
    vision_fingerprint,
)
from longclip_diffusers.training.longclip import parse_longclip_args, train_longclip
from longclip_diffusers.training.text_only import load_text_only_clip

BROKEN = "image_0003.png"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    save_clip_model(tiny_bigg_clip_model(), root / "base", tokenizer=tiny_clip_tokenizer())
    captions = write_tiny_caption_set(root / "data", count=12, long_words=50)
    (root / "data" / BROKEN).write_bytes(b"\x89PNG broken")
    return root, captions


def _cache(setup, name: str, *extra: str) -> int:
    root, captions = setup
    return cli(
        [
            "cache-image-features",
            "--base-model",
            str(root / "base"),
            "--data",
            str(captions),
            "--image-root",
            str(captions.parent),
            "--output-dir",
            str(root / name),
            "--samples-per-shard",
            "5",
            "--batch-size",
            "4",
            "--num-workers",
            "0",
            "--cpu",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def cache32(setup):
    assert _cache(setup, "cache32", "--dtype", "float32") == 0
    return setup[0] / "cache32"


@pytest.fixture(scope="module")
def cache16(setup):
    assert _cache(setup, "cache16") == 0
    return setup[0] / "cache16"


def test_the_cache_records_the_data_order_the_model_hash_and_the_skipped_image(setup, cache16):
    root, captions = setup
    manifest = CacheManifest.read(cache16)
    assert manifest.model_hash == vision_fingerprint(CLIPModel.from_pretrained(root / "base"))
    assert (manifest.unit_kind, manifest.unit_sizes, manifest.dtype, manifest.dim) == (
        "records",
        (5, 5, 2),
        "float16",
        128,
    )
    names, skipped = [], []
    for unit in range(3):
        with safe_open(str(unit_file(cache16, unit)), framework="pt") as handle:
            metadata = handle.metadata()
            features = handle.get_tensor("features")
            assert features.dtype == torch.float16 and features.shape[1] == 128
        names += json.loads(metadata["names"])
        skipped += json.loads(metadata["skipped"])
    assert names == [record.image for record in read_records(captions)]
    assert [(position, image.rsplit("/", 1)[-1]) for position, image, _ in skipped] == [(3, BROKEN)]


def test_cached_features_are_the_vision_towers_output(setup, cache16, cache32):
    root, captions = setup
    model = CLIPModel.from_pretrained(root / "base").eval()
    from PIL import Image

    from longclip_diffusers.io.image_preprocessing import ClipImageTransform

    transform = ClipImageTransform(32)
    with Image.open(captions.parent / "image_0007.png") as image:
        pixels = transform(image).unsqueeze(0)
    with torch.no_grad():
        expected = model.get_image_features(pixel_values=pixels).pooler_output[0]
    torch.testing.assert_close(FeatureCache(cache32).record_lookup(7), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(FeatureCache(cache16).record_lookup(7).float(), expected, atol=2e-3, rtol=2e-3)
    skipped = FeatureCache(cache16).record_lookup(3)
    assert isinstance(skipped, Skipped) and skipped.image.endswith(BROKEN)


def _grads(model, features_in, ids, short_ids, eos):
    out = ContrastiveFeatures(model, eos)(features_in, ids, short_ids)
    loss = pcm_loss(out.image, out.long_text, out.short_text, out.logit_scale, pca_dim=2)
    loss.total.backward()
    return loss.total.item(), {
        name.removeprefix("encoder."): p.grad for name, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 1e-5), ("float16", 3e-3)])
def test_cached_features_give_the_loss_and_gradients_of_the_uncached_frozen_vision_run(
    setup, cache16, cache32, dtype, tolerance
):
    root, captions = setup
    cache = FeatureCache(cache32 if dtype == "float32" else cache16)
    tokenizer = tiny_clip_tokenizer(model_max_length=248)
    rows = [0, 1, 2, 4, 5, 6, 7, 8, 9, 10]  # every readable pair but the last, across all three units
    records = read_records(captions)
    dataset = CachedFeatureDataset([(i, records[i]) for i in rows], cache)
    cached = torch.stack([dataset[i][0] for i in range(len(rows))])
    from longclip_diffusers.io.image_preprocessing import ClipImageTransform
    from longclip_diffusers.training import ImageCaptionDataset

    images = ImageCaptionDataset([records[i] for i in rows], captions.parent, ClipImageTransform(32))
    pixels = torch.stack([images[i][0] for i in range(len(rows))])
    ids = tokenizer([records[i].caption for i in rows], padding="max_length", max_length=248, return_tensors="pt")
    short = tokenizer(
        [records[i].short_caption for i in rows], padding="max_length", max_length=248, return_tensors="pt"
    )

    full = prepare_longclip_model(CLIPModel.from_pretrained(root / "base"), keep=20, ratio=4.0, freeze_vision=True)
    text_only = prepare_longclip_model(load_text_only_clip(root / "base"), keep=20, ratio=4.0, freeze_vision=True)
    loss_a, grads_a = _grads(full, pixels, ids.input_ids, short.input_ids, tokenizer.eos_token_id)
    loss_b, grads_b = _grads(text_only, cached, ids.input_ids, short.input_ids, tokenizer.eos_token_id)
    assert loss_b == pytest.approx(loss_a, rel=tolerance)
    assert grads_a.keys() == grads_b.keys() and "text_projection.weight" in grads_a
    for name, grad in grads_a.items():
        if name.endswith("k_proj.bias"):
            continue  # its true gradient is 0 (softmax ignores a bias shared by all keys)
        assert (grads_b[name] - grad).norm() <= tolerance * grad.norm(), name


def _train(setup, name: str, *extra: str):
    root, captions = setup
    args = tiny_training_argv(
        root / "base",
        captions,
        root / name,
        "--freeze-vision",
        "--validation-size",
        "3",
        *extra,
        image_root=captions.parent,
        lr="1e-3",
    )
    return train_longclip(parse_longclip_args(args))


def test_training_on_cached_features_never_builds_the_vision_tower_and_matches_the_uncached_run(
    setup, cache32, monkeypatch
):
    uncached = _train(setup, "uncached", "--export", "text-encoder")
    from transformers.models.clip import modeling_clip

    def refuse(*args, **kwargs):
        raise AssertionError("the vision tower was built")

    monkeypatch.setattr(modeling_clip.CLIPVisionEmbeddings, "__init__", refuse)
    cached = _train(setup, "cached", "--image-features", str(cache32))
    monkeypatch.undo()
    assert cached.losses == pytest.approx(uncached.losses, rel=1e-5)
    assert set(cached.validation) == set(uncached.validation) and cached.validation
    root = setup[0]
    # with the cache the export is the text encoder with projection at 248 (SDXL's second slot)
    encoder = CLIPTextModelWithProjection.from_pretrained(root / "cached")
    assert encoder.config.max_position_embeddings == 248 and encoder.text_projection.out_features == 128
    assert CLIPTokenizer.from_pretrained(root / "cached").model_max_length == 248
    reference = CLIPTextModelWithProjection.from_pretrained(root / "uncached").state_dict()
    for key, tensor in encoder.state_dict().items():
        if key.endswith("k_proj.bias"):
            # its true gradient is 0; Adam blows the rounding noise up to full-size steps in either run
            continue
        torch.testing.assert_close(tensor, reference[key], atol=1e-5, rtol=1e-4, msg=key)


@pytest.mark.slow
def test_skipped_images_of_the_cache_are_counted_like_unreadable_images(setup, cache16):
    cached = _train(setup, "skips", "--image-features", str(cache16), "--max-steps", "4")
    uncached = _train(setup, "skips-uncached", "--max-steps", "4")
    assert cached.skipped == uncached.skipped
    assert cached.skipped and all(path.endswith(BROKEN) for path, _ in cached.skipped)


def test_an_interrupted_cache_computes_only_its_missing_units(setup, cache32, capsys):
    root = setup[0]
    copy = root / "resume"
    copy.mkdir()
    for path in cache32.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    unit_file(copy, 1).unlink()
    kept = unit_file(copy, 0).stat().st_mtime_ns
    assert _cache(setup, "resume", "--dtype", "float32") == 0
    assert "2 unit(s) of this process already cached; computing the other 1" in capsys.readouterr().out
    assert unit_file(copy, 0).stat().st_mtime_ns == kept
    with (
        safe_open(str(unit_file(copy, 1)), framework="pt") as new,
        safe_open(str(unit_file(cache32, 1)), framework="pt") as old,
    ):
        assert torch.equal(new.get_tensor("features"), old.get_tensor("features"))


def test_a_cache_of_other_inputs_is_refused_unless_overwritten(setup, cache16, capsys):
    assert _cache(setup, "cache16", "--dtype", "float32") == 1
    assert "holds a feature cache of other inputs (dtype differ)" in capsys.readouterr().err


def test_training_refuses_a_cache_written_for_other_data(setup, cache16, tmp_path):
    root, captions = setup
    edited = tmp_path / "captions.jsonl"
    lines = captions.read_text().splitlines()
    edited.write_text("\n".join(reversed(lines)) + "\n")
    with pytest.raises(FeatureCacheError, match="written for other data"):
        train_longclip(
            parse_longclip_args(
                [
                    "--base-model",
                    str(root / "base"),
                    "--data",
                    str(edited),
                    "--image-root",
                    str(captions.parent),
                    "--output-dir",
                    str(tmp_path / "out"),
                    "--batch-size",
                    "4",
                    "--cpu",
                    "--freeze-vision",
                    "--image-features",
                    str(cache16),
                ]
            )
        )
    assert not (tmp_path / "out").exists()


def test_image_features_without_freeze_vision_is_an_argument_error():
    with pytest.raises(ValueError, match="add --freeze-vision"):
        parse_longclip_args(["--base-model", "b", "--data", "d.json", "--output-dir", "o", "--image-features", "c"])


def test_the_cache_folder_is_written_only_after_the_arguments_are_checked(setup, tmp_path):
    root, captions = setup
    assert (
        cli(
            [
                "cache-image-features",
                "--base-model",
                str(root / "base"),
                "--data",
                str(tmp_path / "missing.jsonl"),
                "--output-dir",
                str(tmp_path / "never"),
                "--cpu",
            ]
        )
        == 1
    )
    assert not os.path.exists(tmp_path / "never")


def test_dataloader_workers_read_the_cache_each_with_its_own_files(setup, cache16):
    from torch.utils.data import DataLoader

    root, captions = setup
    records = read_records(captions)
    dataset = CachedFeatureDataset(list(enumerate(records))[4:10], FeatureCache(cache16))
    loaded = list(DataLoader(dataset, batch_size=None, num_workers=2, collate_fn=lambda item: item))
    in_process = [dataset[i] for i in range(len(dataset))]
    assert len(loaded) == 6
    for got, expected in zip(loaded, in_process):
        assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]
