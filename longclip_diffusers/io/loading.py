"""THE loader: a CLIP text encoder, full CLIP model or tokenizer from wherever it lives.

A source is a hub repo id (a released Long-CLIP checkpoint from :data:`KNOWN_CHECKPOINTS`, a
released TULIP one from :data:`KNOWN_TULIP_REPOS`, or any transformers CLIP repo), a local ``.pt``/``.safetensors`` file in the OpenAI layout, a
single file holding text encoders (a ComfyUI text-encoder file, an SD1.x / SDXL / SD3 / Flux
checkpoint: :mod:`longclip_diffusers.conversion.single_file`), a transformers folder (a
``CLIPTextModel``, ``CLIPTextModelWithProjection`` or ``CLIPModel``, such as a pipeline's
``text_encoder`` folder), or, with a ``tower``, a diffusers pipeline folder. Checkpoint files are converted once and the result is
kept, in the export format, under :func:`cache_root`, so the next load reads safetensors directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, overload

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, list_repo_files, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)
from transformers.utils import logging as transformers_logging

from ..constants import (
    DEFAULT_PIPELINE,
    DEFAULT_RATIO,
    DEFAULT_TOKENIZER,
    KNOWN_CHECKPOINTS,
    KNOWN_TULIP_REPOS,
)
from ..conversion.convert import open_clip_config_beside
from ..conversion.model_building import ConvertKind
from ..conversion.single_file import TOWERS
from ..devices import check_device
from ..errors import (
    CheckpointError,
    InputNotFoundError,
    InvalidArgumentError,
    ModelNotAvailableError,
    OutputExistsError,
    PathKindError,
)
from ..tulip import TulipModel, TulipPreTrainedModel, TulipTextModel, TulipTextModelWithProjection
from .export import FullModel, TextEncoder, export_checkpoint, resolve_dtype

#: Environment variable that overrides where converted checkpoints are kept.
CACHE_ENV = "LONGCLIP_DIFFUSERS_CACHE"

# Part of every cache key: bump it when the export format changes so old conversions are redone.
_CACHE_FORMAT = "1"

_MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "*.txt"]
# open_clip's copy of the same weights, which laion's CLIP repos (ViT-bigG/14: 10 GB) hold
# beside the transformers ones: a transformers model folder never reads it
_MODEL_FILES_IGNORED = ["open_clip_*"]
_CHECKPOINT_FILE_PATTERNS = ["*.pt", "*.pth", "*.bin", "*.safetensors"]
_PIPELINE_FILE_PATTERNS = ["*.json", "*.txt", "*.safetensors"]
_TOKENIZER_FILE_PATTERNS = ["tokenizer*.json", "vocab.json", "merges.txt", "special_tokens_map.json"]
#: The file :func:`_hub_unreachable` asks the hub about: any answer, even "not found", will do.
_PROBE_FILE = "README.md"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: The subfolder of a diffusers pipeline holding each tower (SD1.x, SDXL, SD3, Flux alike).
PIPELINE_TEXT_ENCODERS = {"clip_l": "text_encoder", "clip_g": "text_encoder_2"}
#: OpenCLIP's bigG pads with "!" (id 0), as SDXL's ``tokenizer_2`` and ComfyUI's clip_g
#: tokenizer do (docs/comfyui-nodes.md); CLIP-L pads with its end token.
BIGG_PAD_TOKEN = "!"
_CLASSES_BY_NAME = {
    cls.__name__: cls
    for cls in (
        CLIPModel,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        TulipModel,
        TulipTextModel,
        TulipTextModelWithProjection,
    )
}
_CLASSES_BY_MODEL_TYPE = {
    "clip": CLIPModel,
    "clip_text_model": CLIPTextModel,
    "tulip": TulipModel,
    "tulip_text": TulipTextModel,
}

#: The classes a saved model folder loads as: CLIP's and their TULIP counterparts.
ClipClass = (
    type[CLIPModel]
    | type[CLIPTextModel]
    | type[CLIPTextModelWithProjection]
    | type[TulipModel]
    | type[TulipTextModel]
    | type[TulipTextModelWithProjection]
)
ModelT = TypeVar("ModelT", bound=torch.nn.Module)


@overload
def load_text_encoder(
    source: str | os.PathLike,
    *,
    with_projection: Literal[False] = False,
    torch_dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike | None = None,
    stretch: bool = True,
    tower: str | None = None,
) -> CLIPTextModel | TulipTextModel: ...


@overload
def load_text_encoder(
    source: str | os.PathLike,
    *,
    with_projection: Literal[True],
    torch_dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike | None = None,
    stretch: bool = True,
    tower: str | None = None,
) -> CLIPTextModelWithProjection | TulipTextModelWithProjection: ...


@overload
def load_text_encoder(
    source: str | os.PathLike,
    *,
    with_projection: bool,
    torch_dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike | None = None,
    stretch: bool = True,
    tower: str | None = None,
) -> TextEncoder: ...


def load_text_encoder(
    source: str | os.PathLike,
    *,
    with_projection: bool = False,
    torch_dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike | None = None,
    stretch: bool = True,
    tower: str | None = None,
) -> TextEncoder:
    """A ready (eval-mode) ``CLIPTextModel``, or ``CLIPTextModelWithProjection`` when
    ``with_projection``, from a hub id, a checkpoint file or a transformers folder. A TULIP
    source gives the TULIP counterpart (``TulipTextModel`` / ``...WithProjection``).

    ``cache_dir`` is where converted checkpoints are kept (default :func:`cache_root`).
    ``stretch=False`` keeps a plain OpenAI CLIP file at its 77 positions instead of stretching
    it to Long-CLIP's 248 (:func:`converted_dir`); it changes nothing for other sources.
    ``tower`` (``"clip_l"`` / ``"clip_g"``) picks the text encoder of a file or pipeline folder
    holding several (:func:`text_encoder_folder`,
    :func:`~longclip_diffusers.conversion.single_file.select_text_tower`).
    Raises :class:`ModelNotAvailableError` when the source is on the hub, not downloaded, and the
    hub cannot be reached.
    """
    if device is not None:
        check_device(device)
    kind: ConvertKind = "text_with_projection" if with_projection else "text"
    directory = _model_dir(text_encoder_folder(source, tower), kind, cache_dir, stretch, tower)
    cls: type[TextEncoder] = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    saved = saved_model_class(directory)
    if issubclass(saved, (TulipModel, TulipPreTrainedModel)):
        cls = TulipTextModelWithProjection if with_projection else TulipTextModel
    config = _text_config_of_clip_model(directory) if with_projection and saved is CLIPModel else None
    return _load(cls, directory, torch_dtype, device, config=config)


def load_clip_model(
    source: str | os.PathLike,
    *,
    torch_dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike | None = None,
    stretch: bool = True,
) -> FullModel:
    """A ready text + vision ``CLIPModel`` (for evaluation and training), from the same sources
    as :func:`load_text_encoder`, ``stretch`` included; a TULIP source gives the
    :class:`~longclip_diffusers.TulipModel` counterpart."""
    if device is not None:
        check_device(device)
    directory = _model_dir(source, "full", cache_dir, stretch, None)
    saved = saved_model_class(directory)
    if not issubclass(saved, (CLIPModel, TulipModel)):
        raise CheckpointError(
            f"'{source}' holds a text encoder only, but a CLIPModel needs the vision tower too. "
            "Fix: pass the full Long-CLIP checkpoint or a CLIPModel folder, or use load_text_encoder."
        )
    return _load(saved, directory, torch_dtype, device)


def load_tokenizer(
    source: str | os.PathLike,
    *,
    fallback: str | os.PathLike | None = DEFAULT_TOKENIZER,
    model_max_length: int | None = None,
    tower: str | None = None,
) -> CLIPTokenizer:
    """The tokenizer that belongs to ``source``: the one in its folder, in the sibling
    ``tokenizer*`` folder of a pipeline's ``text_encoder*``, or a hub repo's own; else the one at
    ``fallback`` (a folder or hub id; released Long-CLIP files carry no tokenizer).

    ``source`` may also be a tokenizer folder or hub id itself. ``model_max_length`` sets the
    length the tokenizer pads and truncates to; ``tower`` picks a pipeline folder's tokenizer as
    in :func:`load_text_encoder`, and the fallback for a ``"clip_g"`` encoder pads as bigG does
    (:data:`BIGG_PAD_TOKEN`).
    """
    location = _tokenizer_location(text_encoder_folder(source, tower))
    from_fallback = location is None
    if location is None:
        if fallback is None:
            raise InvalidArgumentError(f"no tokenizer found with '{source}'. Fix: pass a tokenizer folder or hub id.")
        location = _tokenizer_location(fallback)
        if location is None:
            raise InvalidArgumentError(f"'{fallback}' holds no tokenizer. Fix: pass a tokenizer folder or hub id.")
    with _quiet_transformers():
        tokenizer = CLIPTokenizer.from_pretrained(location)
    if model_max_length is not None:
        tokenizer.model_max_length = model_max_length
    if from_fallback and tower == "clip_g":
        tokenizer.pad_token = BIGG_PAD_TOKEN
    return tokenizer


def text_encoder_folder(source: str | os.PathLike, tower: str | None) -> str | os.PathLike:
    """``source`` itself, or for a diffusers pipeline folder and a ``tower`` its text-encoder
    folder (:data:`PIPELINE_TEXT_ENCODERS`)."""
    if tower is None:
        return source
    if tower not in TOWERS:
        raise InvalidArgumentError(f"tower must be one of {', '.join(TOWERS)}; got {tower!r}")
    path = Path(source).expanduser()
    if not (path / "model_index.json").is_file():
        return source
    folder = path / PIPELINE_TEXT_ENCODERS[tower]
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"the pipeline folder '{path}' has no {folder.name} folder, where its {tower} text encoder "
            f"would be. Fix: pick the other slot, or pass a folder that has it."
        )
    return folder


def saved_model_class(directory: str | os.PathLike) -> ClipClass:
    """The CLIP class a transformers folder was saved from (its ``config.json``)."""
    config_path = Path(directory) / "config.json"
    if (Path(directory) / "model_index.json").is_file() and not config_path.is_file():
        raise CheckpointError(
            f"'{directory}' is a diffusers pipeline folder. Fix: pass its text encoder folder, "
            f"e.g. '{Path(directory) / 'text_encoder'}' or '{Path(directory) / 'text_encoder_2'}'."
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read '{config_path}' ({exc}). Fix: pass a transformers model folder "
            "(with config.json) or a .pt/.safetensors checkpoint."
        ) from exc
    for name in config.get("architectures") or ():
        if name in _CLASSES_BY_NAME:
            return _CLASSES_BY_NAME[name]
    model_type = config.get("model_type")
    if model_type in _CLASSES_BY_MODEL_TYPE:
        return _CLASSES_BY_MODEL_TYPE[model_type]
    raise CheckpointError(
        f"'{directory}' holds a {model_type or 'unknown'} model, not CLIP. "
        "Fix: pass a CLIP text encoder, a CLIPModel or a Long-CLIP checkpoint."
    )


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where converted checkpoints are kept: ``cache_dir``, else ``$LONGCLIP_DIFFUSERS_CACHE``,
    else ``$HF_HOME/longclip_diffusers``, else ``~/.cache/longclip_diffusers``."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "longclip_diffusers"
    return Path.home() / ".cache" / "longclip_diffusers"


def converted_dir(
    checkpoint: str | os.PathLike,
    kind: ConvertKind,
    cache_dir: str | os.PathLike | None = None,
    tulip: bool | None = None,
    stretch: bool = True,
    tower: str | None = None,
) -> Path:
    """The cached transformers folder of ``checkpoint`` converted as ``kind`` (and ``tulip``, as
    in :func:`~longclip_diffusers.conversion.convert.convert_checkpoint`), converting it on the first call.
    A plain OpenAI CLIP file (77 positions) is stretched to Long-CLIP's 248 unless ``stretch`` is
    False: then it stays CLIP, for scoring CLIP itself or for a trainer that stretches with its
    own ``keep``/``ratio``. ``tower`` picks the text encoder of a file holding several. The key is
    the file's path, size and modification time (so an edited file is converted again), the
    conversion options and the ``open_clip_config.json`` beside the file, if any
    (:func:`~longclip_diffusers.conversion.convert.convert_checkpoint`)."""
    # absolute, not resolved: the hub cache links each file to an extensionless blob, and the
    # extension says how the file is read
    path = Path(checkpoint).expanduser().absolute()
    stat = path.stat()
    identity = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{kind}|tulip={tulip}|stretch={stretch}|{_CACHE_FORMAT}"
    if tower is not None:
        identity += f"|tower={tower}"
    sidecar = open_clip_config_beside(path)
    if sidecar is not None:  # its heads and activation shape the converted model too
        identity += f"|open_clip={hashlib.sha256(sidecar.read_bytes()).hexdigest()}"
    key = hashlib.sha256(identity.encode()).hexdigest()
    entry = cache_root(cache_dir) / f"{path.stem}-{kind}-{key[:16]}"
    if not (entry / "config.json").is_file():
        # ratio 1 maps every row onto itself: the 77-row table is kept as it is
        ratio = DEFAULT_RATIO if stretch else 1.0
        with contextlib.suppress(OutputExistsError):  # another process finished it first
            export_checkpoint(path, entry, kind=kind, tulip=tulip, ratio=ratio, tower=tower)
    return entry


def is_tulip_repo(source: str | os.PathLike) -> bool:
    """Whether ``source`` names a released TULIP repo (:data:`KNOWN_TULIP_REPOS`), whose
    checkpoint must be converted with ``tulip=True``."""
    return str(source) in KNOWN_TULIP_REPOS


def resolve_source(source: str | os.PathLike) -> Path:
    """A local file or folder for ``source``, downloading hub sources (or finding them in the hub
    cache). Raises :class:`ModelNotAvailableError` when that needs the hub and it is unreachable."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    name = str(source)
    if isinstance(source, os.PathLike) or not _REPO_ID.match(name):
        raise InputNotFoundError(
            f"'{source}' does not exist. Fix: pass an existing .pt/.safetensors file, a transformers "
            f"model folder, or a hub repo id such as {next(iter(KNOWN_CHECKPOINTS))}."
        )
    filename = KNOWN_CHECKPOINTS.get(name)
    if filename is not None:
        return _download(name, filename=filename)
    if is_tulip_repo(name):
        return _download_single_checkpoint(name)
    return _download(name, patterns=_MODEL_FILE_PATTERNS, ignore=_MODEL_FILES_IGNORED)


def resolve_pipeline(id_or_dir: str | os.PathLike) -> Path:
    """A local diffusers pipeline folder for ``id_or_dir`` (a folder ``save_pretrained`` wrote, or
    a hub repo id, downloaded or found in the hub cache), for ``DiffusionPipeline.from_pretrained``.

    Raises :class:`InputNotFoundError` for a missing folder or one without ``model_index.json``, and
    :class:`ModelNotAvailableError` when the hub is needed and unreachable, each with the fix.
    """
    path = Path(id_or_dir).expanduser()
    name = str(id_or_dir)
    if path.is_file():
        raise PathKindError(
            f"'{id_or_dir}' is a file; a pipeline is a diffusers folder (with model_index.json) or a hub "
            f"repo id such as {DEFAULT_PIPELINE}. Fix: pass the pipeline folder; a Long-CLIP checkpoint "
            "goes to --long-clip (apply_long_clip's second argument)."
        )
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise InputNotFoundError(
                f"'{id_or_dir}' is not a diffusers pipeline folder (no model_index.json). Fix: pass "
                "the folder pipe.save_pretrained() wrote, or a hub repo id such as " + DEFAULT_PIPELINE
            )
        return path
    if path.exists() or isinstance(id_or_dir, os.PathLike) or not _REPO_ID.match(name):
        raise InputNotFoundError(
            f"'{id_or_dir}' does not exist. Fix: pass a diffusers pipeline folder or a hub repo id "
            f"such as {DEFAULT_PIPELINE}."
        )
    from diffusers import DiffusionPipeline

    # model_index.json first: it tells, in one small request, whether the repo can be had at all,
    # and turns an unreachable hub or a wrong id into the same fix-naming error as the encoders
    offline = _hub_unreachable(name)
    with _hub_errors(name, patterns=_PIPELINE_FILE_PATTERNS, use_as="as the pipeline (--pipeline DIR)"):
        hf_hub_download(name, "model_index.json", local_files_only=offline)
        return Path(DiffusionPipeline.download(name, local_files_only=offline))


def _model_dir(source: str | os.PathLike, kind: ConvertKind, cache_dir, stretch: bool, tower: str | None) -> Path:
    path = resolve_source(source)
    if path.is_file() and (path.parent / "config.json").is_file() and Path(source).expanduser().exists():
        # a local transformers folder's own weights file (our export's model.safetensors): the
        # folder says what the weights are, a bare file cannot
        return path.parent
    if path.is_file():
        return converted_dir(path, kind, cache_dir, tulip=is_tulip_repo(source) or None, stretch=stretch, tower=tower)
    return path


def _text_config_of_clip_model(directory: Path) -> CLIPTextConfig:
    """The text config of a ``CLIPModel`` folder with the projection width the model really has.

    ``CLIPModel`` builds ``text_projection`` from the top-level ``projection_dim``, while
    ``CLIPTextModelWithProjection`` reads ``text_config.projection_dim``, which
    ``CLIPConfig(projection_dim=...)`` leaves at its default of 512: without this a folder whose
    projection is another width (OpenCLIP bigG: 1280) does not load with its projection."""
    config = CLIPConfig.from_pretrained(directory)
    # a loaded CLIPConfig holds a CLIPTextConfig (transformers also annotates the dict it takes)
    text = cast(CLIPTextConfig, config.text_config)
    text.projection_dim = config.projection_dim
    return text


def _load(cls: type[ModelT], directory: Path, torch_dtype, device, config=None) -> ModelT:
    kwargs: dict[str, Any] = {}
    if config is not None:
        kwargs["config"] = config
    dtype = resolve_dtype(torch_dtype)
    if dtype is not None:
        kwargs["dtype"] = dtype
    with _quiet_transformers():
        # transformers annotates from_pretrained as returning the model alone, but
        # output_loading_info=True makes it return (model, loading info)
        model, info = cls.from_pretrained(  # type: ignore[attr-defined]
            directory, output_loading_info=True, **kwargs
        )
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        hint = (
            "it has no text projection: load it without with_projection"
            if any("text_projection" in key for key in missing)
            else "it is incomplete: export or download it again"
        )
        raise CheckpointError(
            f"'{directory}' lacks weights a {cls.__name__} needs ({', '.join(missing[:5])}). Fix: {hint}."
        )
    if device is not None:
        model = model.to(device)
    return model.eval()


def _tokenizer_location(source: str | os.PathLike) -> str | None:
    """A local folder holding tokenizer files, or a hub repo id to take the tokenizer from."""
    path = Path(source).expanduser()
    if path.is_dir():
        candidates = [path, path / "tokenizer"]
        if path.name.startswith("text_encoder"):
            candidates.append(path.parent / path.name.replace("text_encoder", "tokenizer", 1))
        found = next((c for c in candidates if _has_tokenizer_files(c)), None)
        return str(found) if found is not None else None
    if path.exists() or str(source) in KNOWN_CHECKPOINTS or is_tulip_repo(source):
        return None
    name = str(source)
    if not _REPO_ID.match(name):
        raise InputNotFoundError(f"no tokenizer folder at '{source}'. Fix: check the path.")
    snapshot = _download(name, patterns=_TOKENIZER_FILE_PATTERNS, use_as="as the tokenizer (--tokenizer DIR)")
    return str(snapshot) if _has_tokenizer_files(snapshot) else None


def _has_tokenizer_files(directory: Path) -> bool:
    # transformers 5 builds an empty 2-token tokenizer from a folder without these, silently
    return (directory / "tokenizer.json").is_file() or (
        (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file()
    )


def _download(
    repo_id: str,
    *,
    filename: str | None = None,
    patterns: list[str] | None = None,
    ignore: list[str] | None = None,
    use_as: str = "as the source",
) -> Path:
    """One file of a hub repo, or a snapshot of the files matching ``patterns`` and not
    ``ignore``, from the hub cache or the hub. An unreachable hub or a missing repo becomes one
    :class:`ModelNotAvailableError` that says what to fetch and where to put it."""
    offline = _hub_unreachable(repo_id)
    with _hub_errors(repo_id, filename=filename, patterns=patterns, use_as=use_as):
        if filename is not None:
            return Path(hf_hub_download(repo_id, filename, local_files_only=offline))
        return Path(
            snapshot_download(repo_id, allow_patterns=patterns, ignore_patterns=ignore, local_files_only=offline)
        )


def _download_single_checkpoint(repo_id: str) -> Path:
    """The one checkpoint file of a hub repo whose file name is not known in advance, from the hub
    or, offline, the hub cache; errors as :func:`_download`."""
    with _hub_errors(repo_id, patterns=_CHECKPOINT_FILE_PATTERNS, pick_one=True):
        if _hub_unreachable(repo_id):
            return _cached_single_checkpoint(repo_id)
        names = list_repo_files(repo_id)
        return Path(hf_hub_download(repo_id, _single_checkpoint_name(repo_id, names)))


def _cached_single_checkpoint(repo_id: str) -> Path:
    snapshot = Path(snapshot_download(repo_id, allow_patterns=_CHECKPOINT_FILE_PATTERNS, local_files_only=True))
    names = [path.relative_to(snapshot).as_posix() for path in snapshot.rglob("*") if path.is_file()]
    if not _checkpoint_names(names):
        raise LocalEntryNotFoundError(f"the hub cache holds no checkpoint file of {repo_id}")
    return snapshot / _single_checkpoint_name(repo_id, names)


def _single_checkpoint_name(repo_id: str, names: list[str]) -> str:
    found = _checkpoint_names(names)
    if len(found) != 1:
        raise CheckpointError(
            f"'{repo_id}' should hold one checkpoint file (.pt/.pth/.bin/.safetensors) but holds "
            f"{len(found)}: {', '.join(found) or 'none'}. Fix: download one (`hf download {repo_id} FILE "
            f"--local-dir ./{repo_id.split('/')[-1]}`) and pass its local path."
        )
    return found[0]


def _checkpoint_names(names: list[str]) -> list[str]:
    return sorted(name for name in names if any(fnmatch(name, pattern) for pattern in _CHECKPOINT_FILE_PATTERNS))


def _hub_unreachable(repo_id: str) -> bool:
    """Whether to read ``repo_id`` from the hub cache only: ``HF_HUB_OFFLINE`` is set (read now,
    so setting it after huggingface_hub was imported counts too), or one request to the hub gets
    no answer. huggingface_hub's downloads retry a failed connection five times with back-off,
    about 24 s, before falling back to the cache; one try without retries says as much."""
    if (
        hub_constants.HF_HUB_OFFLINE
        or os.environ.get("HF_HUB_OFFLINE", "").upper() in hub_constants.ENV_VARS_TRUE_VALUES
    ):
        return True
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, _PROBE_FILE))
    except HfHubHTTPError:
        return False  # the hub answered (e.g. no such file, or no access): it is reachable
    except Exception:  # noqa: BLE001 - no connection; the exception type depends on the HTTP client
        return True
    return False


@contextlib.contextmanager
def _hub_errors(
    repo_id: str,
    *,
    filename: str | None = None,
    patterns: list[str] | None = None,
    use_as: str = "as the source",
    pick_one: bool = False,
):
    """Turn a hub cache miss while offline, or a hub error, into one
    :class:`ModelNotAvailableError` saying what to download (``filename``, or the files matching
    ``patterns``) and which local path to pass ``use_as`` (the folder, or with ``pick_one`` the
    checkpoint file in it)."""
    try:
        yield
    except LocalEntryNotFoundError as exc:
        folder = f"./{repo_id.split('/')[-1]}"
        if filename is not None:
            what, args, local = f"{repo_id} file {filename}", f"{repo_id} {filename}", f"{folder}/{filename}"
        else:
            what, args = repo_id, download_arguments(repo_id, patterns or [])
            local = f"the path of the checkpoint file in {folder}" if pick_one else folder
        raise ModelNotAvailableError(
            f"{what} is not downloaded and the hub cannot be reached (offline or no connection). "
            f"Fix: on a machine with internet run `hf download {args} --local-dir {folder}`, "
            f"copy {folder} here and pass {local} {use_as}."
        ) from exc
    except HfHubHTTPError as exc:
        raise ModelNotAvailableError(
            f"cannot fetch {filename or 'the model files'} of '{repo_id}' from the hub "
            f"({str(exc).splitlines()[0]}). Fix: check the repo id, or pass a local path."
        ) from exc


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' load reports (e.g. the vision weights a text encoder skips when read
    from a CLIPModel folder); real problems are checked and raised here."""
    previous = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(previous)


def download_arguments(repo_id: str, patterns: list[str]) -> str:
    """``hf download`` arguments for the files of ``repo_id`` matching ``patterns``: one
    ``--include`` per pattern, as the ``hf`` command of huggingface_hub 1.x reads them (it takes
    the words after a single ``--include`` for file names)."""
    return " ".join([repo_id, *(f"--include '{pattern}'" for pattern in patterns)])
