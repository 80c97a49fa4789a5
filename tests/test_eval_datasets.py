"""Each benchmark loader reads a tiny folder written here in that benchmark's published layout."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from longclip_diffusers import load_classification_dataset, load_retrieval_dataset
from longclip_diffusers.evaluation.classification_datasets import ArrayImages
from longclip_diffusers.evaluation.safe_pickle import load_array_pickle


def _touch(root, names):
    """Placeholder image files: the retrieval loaders only check that each image exists."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()


def _image(path, value: int = 0, suffix_format: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (value, 0, 0)).save(path, format=suffix_format)
    return path


def test_urban1k_pairs_each_caption_file_first_line_with_its_jpg(tmp_path):
    for name, text in (("b", "a dog on a road"), ("a", "a red cat")):
        _image(tmp_path / "image" / f"{name}.jpg")
        (tmp_path / "caption").mkdir(exist_ok=True)
        (tmp_path / "caption" / f"{name}.txt").write_text(f"{text}\nsecond line ignored\n")
    data = load_retrieval_dataset("urban1k", tmp_path)
    assert data.captions == ["a red cat", "a dog on a road"]
    assert [p.name for p in data.image_paths] == ["a.jpg", "b.jpg"]
    assert data.text_to_image == [0, 1]


def test_urban1k_caption_without_image_names_the_missing_file(tmp_path):
    (tmp_path / "image").mkdir()
    (tmp_path / "caption").mkdir()
    (tmp_path / "caption" / "x.txt").write_text("a cat")
    with pytest.raises(FileNotFoundError, match="x.jpg"):
        load_retrieval_dataset("urban1k", tmp_path)


def test_sharegpt4v_takes_the_first_1000_entries_with_newlines_flattened(tmp_path):
    entries = [
        {
            "id": str(i),
            "image": f"coco/train2017/{i:04d}.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe."},
                {"from": "gpt", "value": f"Caption {i}.\nMore detail."},
            ],
        }
        for i in range(1003)
    ]
    (tmp_path / "share-captioner_coco_lcs_sam_1246k_1107.json").write_text(json.dumps(entries))
    _touch(tmp_path, [e["image"] for e in entries[:1000]])
    data = load_retrieval_dataset("sharegpt4v", tmp_path)
    assert len(data) == 1000
    assert data.captions[7] == "Caption 7. More detail."
    assert data.image_paths[7] == tmp_path / "coco/train2017/0007.jpg"


def test_sharegpt4v_accepts_the_json_file_itself_as_root(tmp_path):
    entry = {"image": "x.jpg", "conversations": [{"value": "q"}, {"value": "a cat"}]}
    path = tmp_path / "anything.json"
    path.write_text(json.dumps([entry]))
    _touch(tmp_path, ["x.jpg"])
    data = load_retrieval_dataset("sharegpt4v", path)
    assert data.captions == ["a cat"] and data.image_paths == [tmp_path / "x.jpg"]


def test_dci_reads_tulips_tab_separated_csv(tmp_path):
    (tmp_path / "dci_long.csv").write_text(
        "filepath\ttitle\nphotos/sa_1.jpg\ta long description\nphotos/sa_2.jpg\tanother one\n"
    )
    _touch(tmp_path, ["photos/sa_1.jpg", "photos/sa_2.jpg"])
    data = load_retrieval_dataset("dci", tmp_path)
    assert data.captions == ["a long description", "another one"]
    assert data.image_paths == [tmp_path / "photos/sa_1.jpg", tmp_path / "photos/sa_2.jpg"]


def test_dci_release_layout_joins_short_and_extra_captions(tmp_path):
    release = tmp_path / "densely_captioned_images"
    (release / "annotations").mkdir(parents=True)
    for i, (short, extra) in enumerate((("A street.", "Cars\nand people."), ("A cat.", ""))):
        annotation = {"image": f"sa_{i}.jpg", "short_caption": short, "extra_caption": extra}
        (release / "annotations" / f"sa_{i}.json").write_text(json.dumps(annotation))
    _touch(release, ["photos/sa_0.jpg", "photos/sa_1.jpg"])
    data = load_retrieval_dataset("dci", tmp_path)
    assert data.captions == ["A street. Cars and people.", "A cat."]
    assert data.image_paths == [release / "photos/sa_0.jpg", release / "photos/sa_1.jpg"]


def test_coco_keeps_the_first_five_captions_per_image_in_image_id_order(tmp_path):
    annotations = {
        "images": [{"id": 9, "file_name": "9.jpg"}, {"id": 3, "file_name": "3.jpg"}],
        "annotations": [{"image_id": 9, "caption": f"nine {k}"} for k in range(6)]
        + [{"image_id": 3, "caption": f" three {k} "} for k in range(5)],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "captions_val2017.json").write_text(json.dumps(annotations))
    _touch(tmp_path, ["val2017/9.jpg", "val2017/3.jpg"])
    data = load_retrieval_dataset("coco", tmp_path)
    assert [p.name for p in data.image_paths] == ["3.jpg", "9.jpg"]
    assert data.captions[:5] == [f"three {k}" for k in range(5)]
    assert data.captions[5:] == [f"nine {k}" for k in range(5)]
    assert data.text_to_image == [0] * 5 + [1] * 5


def test_flickr30k_groups_token_lines_by_image(tmp_path):
    lines = [f"{name}.jpg#{k}\t{name} caption {k}" for name in ("100", "7") for k in range(5)]
    (tmp_path / "results_20130124.token").write_text("\n".join(lines) + "\n")
    _touch(tmp_path, ["flickr30k-images/100.jpg", "flickr30k-images/7.jpg"])
    data = load_retrieval_dataset("flickr30k", tmp_path)
    assert [p.name for p in data.image_paths] == ["100.jpg", "7.jpg"]
    assert data.image_paths[0].parent == tmp_path / "flickr30k-images"
    assert data.text_to_image == [0] * 5 + [1] * 5
    assert data.captions[6] == "7 caption 1"


def test_missing_images_are_reported_before_any_encoding(tmp_path):
    (tmp_path / "dci_long.csv").write_text("filepath\ttitle\na.jpg\tone\nb.jpg\ttwo\n")
    _touch(tmp_path, ["a.jpg"])
    with pytest.raises(FileNotFoundError, match=r"1 of 2 images .* missing \(first: .*b\.jpg\)"):
        load_retrieval_dataset("dci", tmp_path)


def test_unknown_dataset_and_missing_root_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        load_retrieval_dataset("mscoco", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_retrieval_dataset("coco", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="captions_val2017.json"):
        load_retrieval_dataset("coco", tmp_path)


def test_imagenet_folder_uses_sorted_folders_and_classnames_txt(tmp_path):
    _image(tmp_path / "n002" / "b.JPEG", 10, "JPEG")
    _image(tmp_path / "n001" / "a.png", 20)
    _image(tmp_path / "n001" / "c.jpg", 30)
    (tmp_path / "n001" / "notes.txt").write_text("not an image")
    (tmp_path / "classnames.txt").write_text("goldfish\ngreat_white shark\n")
    data = load_classification_dataset("imagenet", tmp_path)
    assert data.classnames == ["goldfish", "great white shark"]
    assert [p.name for p in data.images] == ["a.png", "c.jpg", "b.JPEG"]
    assert data.labels == [0, 0, 1]


def test_imagenet_classnames_json_maps_folders_and_folder_names_are_the_fallback(tmp_path):
    _image(tmp_path / "n1" / "a.png")
    _image(tmp_path / "n2" / "b.png")
    assert load_classification_dataset("imagenet", tmp_path).classnames == ["n1", "n2"]
    (tmp_path / "classnames.json").write_text(json.dumps({"n2": "tench", "n1": "kite"}))
    assert load_classification_dataset("imagenet", tmp_path).classnames == ["kite", "tench"]


def test_imagenet_classnames_count_mismatch_is_refused(tmp_path):
    _image(tmp_path / "n1" / "a.png")
    (tmp_path / "classnames.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="one name per folder"):
        load_classification_dataset("imagenet", tmp_path)


def _write_cifar(folder, data_file, meta_file, names_key, labels_key, names, labels):
    folder.mkdir(parents=True)
    pixels = np.arange(len(labels) * 3072, dtype=np.int64).reshape(-1, 3072).astype(np.uint8)
    with open(folder / data_file, "wb") as handle:
        pickle.dump({b"data": pixels, labels_key: labels, b"batch_label": b"testing"}, handle, 2)
    with open(folder / meta_file, "wb") as handle:
        pickle.dump({names_key: names}, handle, 2)
    return pixels


def test_cifar10_python_batches_load_as_images_labels_and_names(tmp_path):
    pixels = _write_cifar(
        tmp_path / "cifar-10-batches-py",
        "test_batch",
        "batches.meta",
        b"label_names",
        b"labels",
        [b"airplane", b"automobile"],
        [1, 0, 1],
    )
    data = load_classification_dataset("cifar10", tmp_path)
    assert data.classnames == ["airplane", "automobile"] and data.labels == [1, 0, 1]
    assert isinstance(data.images, ArrayImages) and len(data.images) == 3
    image = np.asarray(data.images[2])
    assert image.shape == (32, 32, 3)
    # Channel-first rows: the red plane is the first 1024 values of the row.
    assert np.array_equal(image[..., 0].reshape(-1), pixels[2, :1024])


def test_cifar100_uses_fine_labels_and_readable_names(tmp_path):
    _write_cifar(
        tmp_path / "cifar-100-python",
        "test",
        "meta",
        b"fine_label_names",
        b"fine_labels",
        [b"apple", b"aquarium_fish"],
        [1, 1],
    )
    data = load_classification_dataset("cifar100", tmp_path)
    assert data.classnames == ["apple", "aquarium fish"] and data.labels == [1, 1]


class _Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_pickle_naming_any_other_global_is_refused_without_running_it(tmp_path, capsys):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": _Exploit()}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load global .*print"):
        load_array_pickle(path)
    assert "code ran" not in capsys.readouterr().out
