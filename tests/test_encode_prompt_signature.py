"""A patched pipeline's ``encode_prompt`` presents the pipeline's own: the same signature, name and
docstring, so code that reads its parameters (diffusers' ``test_encode_prompt_works_in_isolation``
does) sees what it sees on a stock pipeline."""

from __future__ import annotations

import inspect

import pytest
import torch

from longclip_diffusers import apply_long_clip
from longclip_diffusers.tiny import tiny_pipeline_and_long_clip, tiny_sdxl_refiner_pipeline

KINDS = ["sd", "sdxl", "flux", "sd3", "refiner"]


def _patched(kind: str):
    if kind == "refiner":
        return apply_long_clip(tiny_sdxl_refiner_pipeline())
    return apply_long_clip(*tiny_pipeline_and_long_clip(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_signature_name_and_docstring_are_the_pipelines_own(kind):
    pipe = _patched(kind)
    own = type(pipe).encode_prompt
    assert inspect.signature(pipe.encode_prompt) == inspect.signature(own.__get__(pipe))
    assert "self" not in inspect.signature(pipe.encode_prompt).parameters
    assert pipe.encode_prompt.__name__ == "encode_prompt"
    assert pipe.encode_prompt.__qualname__ == own.__qualname__
    assert pipe.encode_prompt.__doc__ == own.__doc__
    assert inspect.unwrap(pipe.encode_prompt) == own.__get__(pipe)


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_built_from_the_signature_alone_encodes_at_248_tokens(kind):
    """The way diffusers' test builds its call: keyword arguments named by the signature, the
    required ones filled in (None where no value is given: SD3's ``prompt_2``, ``prompt_3``),
    everything else left to its default."""
    pipe = _patched(kind)
    values = {
        "prompt": "a red cat sits under a tree",
        "device": "cpu",
        "num_images_per_prompt": 1,
        "do_classifier_free_guidance": False,
        "max_sequence_length": 16,
    }
    parameters = inspect.signature(pipe.encode_prompt).parameters
    call = {name: values.get(name) for name, p in parameters.items() if p.default is inspect.Parameter.empty}
    call.update({name: value for name, value in values.items() if name in parameters})
    with torch.no_grad():
        outputs = pipe.encode_prompt(**call)
    clip_rows = {"sd": 248, "sdxl": 248, "refiner": 248, "sd3": 248 + 16}
    if kind == "flux":
        assert outputs[0].shape[1] == 16 and outputs[1].shape == (1, 32)
    else:
        assert outputs[0].shape[1] == clip_rows[kind]
