"""Zero-shot classification: the 80 templates, the class embedding rule, known answers on tiny
ImageNet-folder and CIFAR fixtures, and the ``eval zeroshot`` command."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from eval_fixtures import COLOURS, RGB, colour_eval_model, save_tiny_clip, write_image

from longclip_diffusers import evaluate_zeroshot, load_classification_dataset
from longclip_diffusers.cli.main import main
from longclip_diffusers.evaluation import OPENAI_IMAGENET_TEMPLATES
from longclip_diffusers.evaluation.zeroshot import average_template_embeddings


def test_there_are_80_distinct_templates_each_with_one_slot():
    assert len(set(OPENAI_IMAGENET_TEMPLATES)) == 80
    assert all(t.count("{}") == 1 for t in OPENAI_IMAGENET_TEMPLATES)
    assert "a photo of a {}." in OPENAI_IMAGENET_TEMPLATES


def test_class_embedding_is_the_normalised_mean_of_normalised_templates():
    features = torch.tensor([[[3.0, 0.0], [0.0, 0.5]], [[1.0, 1.0], [2.0, 2.0]]])
    classes = average_template_embeddings(features)
    torch.testing.assert_close(classes[0], torch.tensor([1.0, 1.0]) / 2**0.5)
    torch.testing.assert_close(classes[1], torch.tensor([1.0, 1.0]) / 2**0.5)


def _imagenet_folder(root, classnames):
    for index, colour in enumerate(COLOURS):
        for k in range(2):
            write_image(root / f"n{index:08d}" / f"{k}.JPEG", colour)
    (root / "classnames.txt").write_text("\n".join(classnames) + "\n")
    return root


def test_imagenet_folder_with_matching_class_names_is_classified_perfectly(tmp_path):
    data = load_classification_dataset("imagenet", _imagenet_folder(tmp_path, COLOURS))
    result = evaluate_zeroshot(colour_eval_model(), data, batch_size=4, progress=False)
    assert result["top1"] == 1.0
    assert (result["num_images"], result["num_classes"], result["num_templates"]) == (6, 3, 80)


def test_rotated_class_names_are_all_wrong_at_top1_and_right_within_top5(tmp_path):
    rotated = COLOURS[1:] + COLOURS[:1]
    data = load_classification_dataset("imagenet", _imagenet_folder(tmp_path, rotated))
    result = evaluate_zeroshot(colour_eval_model(), data, progress=False)
    assert result["top1"] == 0.0
    assert "top5" not in result  # only 3 classes: top-5 is meaningless and left out


def _cifar10(root, labels):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows = [np.repeat(np.array(RGB[COLOURS[label]], dtype=np.uint8), 1024) for label in labels]
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"data": np.stack(rows), b"labels": labels}, handle, protocol=2)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [c.encode() for c in COLOURS]}, handle, protocol=2)
    return root


def test_cifar10_batches_are_classified_by_colour(tmp_path):
    data = load_classification_dataset("cifar10", _cifar10(tmp_path, [2, 0, 1, 1]))
    assert evaluate_zeroshot(colour_eval_model(), data, progress=False)["top1"] == 1.0


def test_eval_zeroshot_command_writes_json_and_prints_accuracy(tmp_path, capsys):
    model = save_tiny_clip(tmp_path / "model")
    root = _cifar10(tmp_path / "cifar", [0, 1, 2])
    out = tmp_path / "zs.json"
    code = main(
        ["eval", "zeroshot", "--model", str(model), "--dataset", "cifar10", "--root", str(root), "--json", str(out)]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["dataset"] == "cifar10" and result["num_templates"] == 80
    assert 0.0 <= result["top1"] <= 1.0
    assert f"{100 * result['top1']:.1f}" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_cifar_batches_name_the_folder_to_unpack(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py|cifar-100-python"):
        load_classification_dataset(name, tmp_path)
