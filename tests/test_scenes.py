"""The procedural scenes of the toy reproduction: deterministic, captioned as specified, and
written in the layout the trainer reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from longclip_diffusers.errors import OutputExistsError
from longclip_diffusers.length.stretching import stretched_length
from longclip_diffusers.reproduction.experiment import FinetuneConfig
from longclip_diffusers.reproduction.pretrain import PretrainConfig
from longclip_diffusers.reproduction.scene_dataset import held_out_scenes, write_scene_dataset
from longclip_diffusers.reproduction.scenes import (
    COLOURS,
    SceneObject,
    distinct_short_captions,
    iter_scenes,
    layout_scene,
    long_caption,
    make_scene,
    short_caption,
)
from longclip_diffusers.training.records import first_sentence, read_records


@pytest.fixture(scope="module")
def sample():
    return list(iter_scenes(200, seed=5))


def test_same_seed_gives_identical_images_and_captions():
    first, second = make_scene(17, seed=3), make_scene(17, seed=3)
    assert first.image.tobytes() == second.image.tobytes()
    assert (first.long_caption, first.short_caption) == (second.long_caption, second.short_caption)


def test_other_seed_or_index_gives_another_scene():
    reference = make_scene(17, seed=3)
    for other in (make_scene(17, seed=4), make_scene(18, seed=3)):
        assert other.image.tobytes() != reference.image.tobytes()
        assert other.long_caption != reference.long_caption


def test_a_scene_does_not_depend_on_how_it_is_reached():
    streamed = list(iter_scenes(3, seed=2, start=40))
    assert [s.long_caption for s in streamed] == [make_scene(i, seed=2).long_caption for i in (40, 41, 42)]


def test_objects_come_largest_first_with_all_sizes_different(sample):
    for scene in sample:
        extents = [o.extent for o in scene.objects]
        assert extents == sorted(extents, reverse=True)
        assert len(set(extents)) == len(extents)


def test_short_caption_is_the_first_sentence_and_names_the_largest_object(sample):
    for scene in sample:
        largest = scene.objects[0]
        assert first_sentence(scene.long_caption) == scene.short_caption
        assert scene.short_caption.split()[1:4] == [largest.size, largest.colour, largest.shape]
        assert scene.largest_colour == largest.colour


def test_long_caption_describes_every_object_and_each_neighbouring_pair(sample):
    for scene in sample:
        sentences = scene.long_caption.rstrip(".").split(". ")
        assert len(sentences) == 2 * len(scene.objects) - 1
        for obj in scene.objects:
            assert f"a {obj.size} {obj.colour} {obj.shape} {obj.place}" in sentences


def test_relations_follow_the_grid():
    def obj(colour, row, column):
        return SceneObject("square", colour, "huge", row, column, 0.5, 0.5)

    objects = (obj("red", 0, 0), obj("blue", 0, 2), obj("pink", 2, 2))
    assert long_caption(objects).endswith(
        "the red square sits left of the blue square. the blue square sits above the pink square."
    )
    assert short_caption(objects) == "a huge red square at the top left"


def test_captions_fit_the_experiment_contexts(sample, tokenizer):
    pretrain, finetune = PretrainConfig(), FinetuneConfig()
    stretched = stretched_length(pretrain.context_length, finetune.keep, finetune.ratio)
    assert stretched == stretched_length(pretrain.context_length, 0, finetune.direct_ratio)
    long_lengths = [len(tokenizer(s.long_caption).input_ids) for s in sample]
    short_lengths = [len(tokenizer(s.short_caption).input_ids) for s in sample]
    # long captions run well past the base's context but fit the stretched one
    assert min(long_lengths) > 2 * pretrain.context_length
    assert max(long_lengths) <= stretched
    # short captions use only the rows that stretching keeps
    assert max(short_lengths) <= finetune.keep


def test_every_object_is_drawn_in_its_colour(sample):
    for scene in sample[:50]:
        pixels = np.asarray(scene.image).reshape(-1, 3)
        for obj in scene.objects:
            assert (pixels == COLOURS[obj.colour]).all(axis=1).any(), scene.long_caption


def test_layout_refuses_negative_seeds():
    with pytest.raises(ValueError, match="non-negative"):
        layout_scene(0, seed=-1)


def test_held_out_scenes_have_distinct_short_captions_and_are_repeatable():
    scenes = held_out_scenes(60, seed=9, image_size=32)
    assert len({s.short_caption for s in scenes}) == 60
    assert [s.long_caption for s in held_out_scenes(60, seed=9, image_size=32)] == [s.long_caption for s in scenes]


def test_held_out_scenes_refuse_more_than_the_distinct_short_captions():
    with pytest.raises(ValueError, match="at most"):
        held_out_scenes(distinct_short_captions() + 1, seed=0)


def test_written_dataset_is_what_the_trainer_reads(tmp_path):
    data = write_scene_dataset(tmp_path / "scenes", count=5, seed=4, image_size=32)
    records = read_records(data)
    expected = list(iter_scenes(5, seed=4, image_size=32))
    assert [r.caption for r in records] == [s.long_caption for s in expected]
    assert [r.short_caption for r in records] == [s.short_caption for s in expected]
    labels = [json.loads(line)["label"] for line in data.read_text().splitlines()]
    assert labels == [s.largest_colour for s in expected]
    assert all((data.parent / r.image).is_file() for r in records)


def test_writing_over_an_existing_dataset_needs_overwrite(tmp_path):
    write_scene_dataset(tmp_path / "scenes", count=2, seed=0, image_size=32)
    with pytest.raises(OutputExistsError):
        write_scene_dataset(tmp_path / "scenes", count=2, seed=1, image_size=32)
    assert [p.name for p in tmp_path.iterdir()] == ["scenes"]
