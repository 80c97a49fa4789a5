"""Image features of a frozen vision tower, computed once (``cache-image-features``) and read by
training (``--image-features DIR``), which then never loads the vision tower.

With ``--freeze-vision`` the image features are a constant of the data, so every epoch's
vision pass (for OpenCLIP ViT-bigG/14: 1.8B of the model's 2.5B parameters, and most of a
step's compute) can be replaced by one pass ahead of training. The cache holds what the vision
tower's forward gives (``get_image_features``: projected, not normalised), so training computes
the same loss and gradients as the uncached frozen-vision run (float16 storage, the default,
rounds them to float16's 3 significant digits; ``--dtype float32`` keeps them exact).

Layout of ``DIR``:

* ``manifest.json``: the format, the base model and the SHA-256 of its vision weights
  (``model_hash``), the data (``--data``, its fingerprint) and how it is cut into units: chunks of
  ``samples_per_shard`` pairs of a caption file, or one unit per tar shard
  (:mod:`.shards`), the feature width and dtype.
* ``features-00000.safetensors``, one per unit: ``features [n, E]`` and ``positions [n]``, the
  rows' positions in the unit (unreadable images have no row), and in the metadata the names of
  all the unit's samples in data order (checked against the data at training time) and the
  skipped ones with their reasons.

Units are written atomically and spread over processes (unit ``u`` on process ``u % P``), so a
run that stops can be started again and only computes the units that are missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..errors import FeatureCacheError, InvalidArgumentError, OutputExistsError
from ..io.atomic import atomic_write_file
from ..io.image_preprocessing import ClipImageTransform
from .data import ImageCaptionDataset, Skipped, make_loader
from .records import CaptionRecord, read_records
from .shards import ShardSet, ShardStream, is_shard_pattern, iter_tar_samples

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
MANIFEST_NAME = "manifest.json"
#: Storage dtypes of the features.
FEATURE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class CacheManifest:
    """What a feature cache was computed from, and how its units cut the data."""

    base_model: str
    model_hash: str
    data: str
    data_fingerprint: str
    unit_kind: str  # "records" (chunks of a caption file) or "tar" (one unit per shard)
    unit_sizes: tuple[int, ...]
    samples_per_unit: int  # records: the chunk size; tar: 0
    dim: int
    dtype: str
    image_size: int
    format: int = CACHE_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def read(cls, folder: str | os.PathLike) -> CacheManifest:
        path = Path(folder) / MANIFEST_NAME
        if not path.is_file():
            raise FeatureCacheError(
                f"{folder} is not a feature cache (no {MANIFEST_NAME}); write one with "
                "`longclip-diffusers cache-image-features` and pass its folder to --image-features"
            )
        entry = json.loads(path.read_text())
        if entry.get("format") != CACHE_FORMAT:
            raise FeatureCacheError(
                f"{folder} holds feature cache format {entry.get('format')}, this version reads "
                f"{CACHE_FORMAT}; write the cache again"
            )
        entry["unit_sizes"] = tuple(entry["unit_sizes"])
        return cls(**entry)

    def same_job(self, other: CacheManifest) -> bool:
        """Whether ``other`` describes the same features (a resumed run may continue)."""
        return self == other


def unit_file(folder: str | os.PathLike, unit: int) -> Path:
    return Path(folder) / f"features-{unit:05d}.safetensors"


def vision_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the vision tower's and visual projection's tensors (names, shapes, dtypes and
    bytes): the features of a cache belong to exactly these weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if name.startswith(("vision_model.", "visual_projection.")):
            tensor = tensor.detach().to("cpu").contiguous()
            digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def data_fingerprint(data: str, image_root: str | os.PathLike | None, shard_set: ShardSet | None = None) -> str:
    """SHA-256 of a caption file's bytes and the image root, or of the tar shards' names and
    sizes (hashing terabytes of images would take longer than caching them)."""
    digest = hashlib.sha256()
    if shard_set is not None:
        for path, count in zip(shard_set.paths, shard_set.counts):
            digest.update(f"{path.name}|{path.stat().st_size}|{count}\n".encode())
    else:
        digest.update(Path(data).read_bytes())
        digest.update(f"|root={Path(image_root).resolve() if image_root is not None else ''}".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# writing


def cache_image_features(args: argparse.Namespace) -> Path:
    """The ``cache-image-features`` job for parsed ``args``: every process computes its units
    (unit ``u`` on process ``u % P``), skipping those already written. Returns the cache folder."""
    from accelerate import Accelerator

    from ..io.loading import load_clip_model

    cpu = args.cpu or not torch.cuda.is_available()
    accelerator = Accelerator(cpu=cpu, mixed_precision=args.mixed_precision or ("no" if cpu else "bf16"))
    output = Path(args.output_dir)
    shard_set = ShardSet.open(args.data, accelerator.is_local_main_process) if is_shard_pattern(args.data) else None
    records = [] if shard_set is not None else read_records(args.data)
    model = load_clip_model(args.base_model, stretch=False).eval()
    manifest = CacheManifest(
        base_model=str(args.base_model),
        model_hash=vision_fingerprint(model),
        data=str(args.data),
        data_fingerprint=data_fingerprint(args.data, args.image_root, shard_set),
        unit_kind="tar" if shard_set is not None else "records",
        unit_sizes=shard_set.counts if shard_set is not None else _chunk_sizes(len(records), args.samples_per_shard),
        samples_per_unit=0 if shard_set is not None else args.samples_per_shard,
        dim=model.config.projection_dim,
        dtype=args.dtype,
        image_size=model.config.vision_config.image_size,
    )
    if accelerator.is_main_process:
        _start_or_resume(output, manifest, args.overwrite)
    accelerator.wait_for_everyone()
    model.to(accelerator.device)
    transform = ClipImageTransform(manifest.image_size)
    units = range(accelerator.process_index, len(manifest.unit_sizes), accelerator.num_processes)
    todo = [unit for unit in units if not unit_file(output, unit).is_file()]
    done_before = len(units) - len(todo)
    if done_before:
        accelerator.print(f"{done_before} unit(s) of this process already cached; computing the other {len(todo)}")
    for unit in tqdm(todo, desc="caching image features", unit="unit", disable=not accelerator.is_local_main_process):
        if shard_set is not None:
            names = shard_sample_names(shard_set, unit)
            items = _tar_unit_items(shard_set, unit, transform, args.num_workers)
        else:
            first = unit * args.samples_per_shard
            chunk = records[first : first + manifest.unit_sizes[unit]]
            names = [record.image for record in chunk]
            items = _record_unit_items(chunk, args.image_root, transform, args.batch_size, args.num_workers)
        _write_unit(output, unit, names, items, model, accelerator, args.batch_size, FEATURE_DTYPES[args.dtype])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        skipped = sum(len(read_unit_metadata(output, unit)["skipped"]) for unit in range(len(manifest.unit_sizes)))
        accelerator.print(
            f"cached the image features of {sum(manifest.unit_sizes) - skipped} samples in "
            f"{len(manifest.unit_sizes)} unit(s) under {output}; {skipped} unreadable image(s) skipped"
        )
    accelerator.end_training()
    return output


def _chunk_sizes(count: int, size: int) -> tuple[int, ...]:
    if size < 1:
        raise InvalidArgumentError(f"--samples-per-shard must be positive; got {size}")
    return tuple(min(size, count - first) for first in range(0, count, size))


def _start_or_resume(output: Path, manifest: CacheManifest, overwrite: bool) -> None:
    """Write the manifest of a new cache, or check that the existing one is this job's."""
    path = output / MANIFEST_NAME
    if path.is_file():
        existing = CacheManifest.read(output)
        if existing.same_job(manifest):
            return
        if not overwrite:
            changed = [k for k, v in asdict(manifest).items() if asdict(existing).get(k) != v]
            raise OutputExistsError(
                f"{output} holds a feature cache of other inputs ({', '.join(changed)} differ); pick "
                "another output folder, or pass --overwrite to replace it"
            )
        for stale in output.glob("features-*.safetensors"):
            stale.unlink()
    output.mkdir(parents=True, exist_ok=True)
    with atomic_write_file(path) as staging:
        staging.write_text(manifest.to_json())


class _Positioned(Dataset):
    """``(position, item)`` of a dataset, so a collated batch knows which samples it holds."""

    def __init__(self, dataset: ImageCaptionDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return index, self.dataset[index]


def _record_unit_items(records, image_root, transform, batch_size: int, num_workers: int) -> Iterator:
    dataset = _Positioned(ImageCaptionDataset(records, image_root, transform))
    batches = [list(range(i, min(i + batch_size, len(dataset)))) for i in range(0, len(dataset), batch_size)]
    for batch in make_loader(dataset, batches, _as_list, num_workers):
        yield from batch


def _tar_unit_items(shard_set: ShardSet, unit: int, transform, num_workers: int) -> Iterator:
    from torch.utils.data import DataLoader

    stream = ShardStream(shard_set, [unit], 0, shard_set.counts[unit], transform)
    loader = DataLoader(stream, batch_size=None, num_workers=num_workers, collate_fn=_as_list)
    yield from enumerate(loader)


def _as_list(items):
    return items


@torch.no_grad()
def _write_unit(
    output: Path, unit: int, names: list[str], items: Iterator, model, accelerator, batch_size: int, dtype
) -> None:
    """Features of one unit's ``(position, item)`` stream, written as one file with the unit's
    sample ``names`` in data order and the skipped samples."""
    skipped: list[list] = []
    positions: list[int] = []
    features: list[torch.Tensor] = []
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        if pending:
            pixels = torch.stack([pixels for _, pixels in pending]).to(accelerator.device)
            with accelerator.autocast():
                out = model.get_image_features(pixel_values=pixels).pooler_output
            features.append(out.float().cpu())
            positions.extend(position for position, _ in pending)
            pending.clear()

    for position, item in items:
        if isinstance(item, Skipped):
            skipped.append([position, item.image, item.reason])
            continue
        pending.append((position, item[0]))
        if len(pending) == batch_size:
            flush()
    flush()
    width = model.config.projection_dim
    tensors = {
        "features": (torch.cat(features) if features else torch.zeros(0, width)).to(dtype).contiguous(),
        "positions": torch.tensor(positions, dtype=torch.int64),
    }
    metadata = {"names": json.dumps(names), "skipped": json.dumps(skipped)}
    with atomic_write_file(unit_file(output, unit)) as staging:
        save_file(tensors, str(staging), metadata=metadata)


def shard_sample_names(shard_set: ShardSet, shard: int) -> list[str]:
    """The names the samples of a tar shard are known by (``SHARD.tar/KEY``), in file order."""
    path = shard_set.paths[shard]
    return [f"{path.name}/{key}" for _, key, _ in iter_tar_samples(path, wanted=lambda _: False)]


def read_unit_metadata(folder: str | os.PathLike, unit: int) -> dict:
    """The ``names`` and ``skipped`` lists of a unit file."""
    path = unit_file(folder, unit)
    if not path.is_file():
        raise FeatureCacheError(
            f"{path} is missing: the feature cache is incomplete; run cache-image-features again "
            "with the same arguments (it computes only the missing units)"
        )
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return {"names": json.loads(metadata.get("names", "[]")), "skipped": json.loads(metadata.get("skipped", "[]"))}


# ---------------------------------------------------------------------------------------------
# reading


class FeatureCache:
    """Read access to a feature cache: ``lookup(unit, position)`` gives a sample's features, or
    :class:`~.data.Skipped` for an image that could not be read when the cache was written.
    Unit files are memory-mapped lazily, in each DataLoader worker on its own."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.manifest = CacheManifest.read(self.folder)
        self._units: dict[int, tuple] = {}

    def __getstate__(self) -> dict:
        # open file handles stay in their process; a worker opens its own
        return {**self.__dict__, "_units": {}}

    def check(self, data: str, image_root, shard_set: ShardSet | None, dim: int) -> None:
        """Refuse a cache written for other data, another cut of it, or another feature width;
        every unit must be there. A different base model name is only warned about (the same
        weights may sit in another folder): ``model_hash`` identifies them."""
        manifest = self.manifest
        kind = "tar" if shard_set is not None else "records"
        if manifest.unit_kind != kind:
            raise FeatureCacheError(
                f"{self.folder} caches {manifest.unit_kind} input but --data {data} is {kind} input; "
                "cache the features of this --data"
            )
        if manifest.data_fingerprint != data_fingerprint(data, image_root, shard_set):
            raise FeatureCacheError(
                f"{self.folder} was written for other data ({manifest.data}); the cached rows would "
                "not match these captions: run cache-image-features on this --data and --image-root"
            )
        if manifest.dim != dim:
            raise FeatureCacheError(
                f"{self.folder} holds {manifest.dim}-wide image features but the text tower projects "
                f"to {dim}; cache the features with this --base-model"
            )
        missing = [u for u in range(len(manifest.unit_sizes)) if not unit_file(self.folder, u).is_file()]
        if missing:
            raise FeatureCacheError(
                f"{self.folder} lacks {len(missing)} of its {len(manifest.unit_sizes)} unit file(s) (first: "
                f"{unit_file(self.folder, missing[0]).name}); run cache-image-features again to finish it"
            )

    def _unit(self, unit: int) -> tuple:
        if unit not in self._units:
            handle = safe_open(str(unit_file(self.folder, unit)), framework="pt")
            positions = handle.get_tensor("positions").tolist()
            metadata = handle.metadata() or {}
            skipped = {position: (image, reason) for position, image, reason in json.loads(metadata["skipped"])}
            names = json.loads(metadata["names"])
            self._units[unit] = (handle, {p: row for row, p in enumerate(positions)}, skipped, names)
        return self._units[unit]

    def lookup(self, unit: int, position: int, name: str | None = None) -> torch.Tensor | Skipped:
        """Features ``[E]`` of sample ``position`` of ``unit``; ``name`` (the sample's image
        path or tar key) is checked against the name the cache recorded there."""
        handle, rows, skipped, names = self._unit(unit)
        if name is not None and names[position] != name:
            raise FeatureCacheError(
                f"sample {position} of unit {unit} is {name!r} in the data but {names[position]!r} in "
                f"{self.folder}: the cache belongs to another order of the data; write it again"
            )
        if position in skipped:
            return Skipped(*skipped[position])
        row = rows[position]
        return handle.get_slice("features")[row : row + 1][0]

    def record_lookup(self, index: int, name: str | None = None) -> torch.Tensor | Skipped:
        """:meth:`lookup` by the index of a pair in a caption file."""
        size = self.manifest.samples_per_unit
        return self.lookup(index // size, index % size, name)


class CachedFeatureDataset(Dataset):
    """``items[i] = (index in the caption file, record)`` -> ``(image features, caption,
    short_caption)`` from a :class:`FeatureCache`, or :class:`~.data.Skipped`."""

    def __init__(self, items: Sequence[tuple[int, CaptionRecord]], cache: FeatureCache):
        self.items = list(items)
        self.cache = cache

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        index, record = self.items[i]
        features = self.cache.record_lookup(index, record.image)
        if isinstance(features, Skipped):
            return features
        return features, record.caption, record.short_caption
