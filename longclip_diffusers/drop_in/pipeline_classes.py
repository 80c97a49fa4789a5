"""SD and SDXL pipeline classes that take a Long-CLIP source at load time.

They are the stock diffusers pipelines plus two ``__init__`` arguments, so every diffusers way
of loading works and passes them through::

    pipe = LongClipStableDiffusionXLPipeline.from_pretrained(sdxl_dir, long_clip="BeichenZhang/LongCLIP-L")
    pipe = LongClipStableDiffusionXLPipeline.from_pretrained(sdxl_dir, long_clip=long_l, long_clip_g="out/long-clip-g")
    pipe = DiffusionPipeline.from_pretrained(sdxl_dir, custom_pipeline="pipelines/long_clip_sdxl.py",
                                             trust_remote_code=True, long_clip="BeichenZhang/LongCLIP-L")
    long = LongClipStableDiffusionXLPipeline.from_pipe(stock, long_clip=encoder)

``long_clip_recipe`` is saved in ``model_index.json``; a pipeline saved after loading has 248-token
encoders already and reloads without ``long_clip`` through this class (or ``custom_pipeline=`` the
same file with ``trust_remote_code=True``); plain ``DiffusionPipeline.from_pretrained`` cannot, as
``model_index.json`` names a class diffusers does not have.
"""

from __future__ import annotations

from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .swap_encoders import apply_long_clip


class LongClipStableDiffusionPipeline(StableDiffusionPipeline):
    """``StableDiffusionPipeline`` with :func:`~longclip_diffusers.apply_long_clip` applied on
    construction (``long_clip``: the Long-CLIP source, ``long_clip_recipe``: the recipe)."""

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker: bool = True,
        long_clip=None,
        long_clip_recipe: str = "standard",
    ):
        _construct(self, StableDiffusionPipeline, locals())


class LongClipStableDiffusionXLPipeline(StableDiffusionXLPipeline):
    """``StableDiffusionXLPipeline`` with :func:`~longclip_diffusers.apply_long_clip` applied on
    construction (``long_clip``: the Long-CLIP-L source, ``long_clip_recipe``: the recipe,
    ``long_clip_g``: a trained Long-CLIP-G for ``text_encoder_2``, else it is stretched)."""

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        tokenizer_2: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        image_encoder=None,
        feature_extractor=None,
        force_zeros_for_empty_prompt: bool = True,
        add_watermarker: bool | None = None,
        long_clip=None,
        long_clip_recipe: str = "standard",
        long_clip_g=None,
    ):
        _construct(self, StableDiffusionXLPipeline, locals())


def _construct(pipe, parent: type[StableDiffusionPipeline] | type[StableDiffusionXLPipeline], arguments: dict) -> None:
    """Run ``parent.__init__`` with the ``__init__`` ``arguments`` of ``pipe`` (its ``locals()``),
    then record the recipe in the config and apply Long-CLIP.

    The subclasses spell their signatures out because diffusers reads them to decide which
    components and options ``from_pretrained`` and ``from_pipe`` pass."""
    options = {name: value for name, value in arguments.items() if name != "self"}
    long_clip, recipe = options.pop("long_clip"), options.pop("long_clip_recipe")
    long_clip_g = options.pop("long_clip_g", None)
    parent.__init__(pipe, **options)
    pipe.register_to_config(long_clip_recipe=recipe)
    apply_long_clip(pipe, long_clip, recipe=recipe, text_encoder_2=long_clip_g)
