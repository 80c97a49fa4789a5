"""WebDataset-style tar shards as training input, read with the standard library.

A shard is a plain tar file; a sample is the run of consecutive members sharing a key (the
member name up to the first dot of its base name), e.g. ``000042.jpg`` + ``000042.json``; the
json holds ``caption`` and optionally ``short_caption`` (``.txt`` holds a bare caption). This is
WebDataset's layout (https://github.com/webdataset/webdataset#the-webdataset-format), read here
with ``tarfile`` and our own brace expansion instead of adding the ``webdataset`` dependency.

Order, splitting and resuming follow the caption-file input (:mod:`.data`): in epoch ``e`` the
shard list is shuffled with the seed and ``e`` (:func:`~.data.epoch_order`), process ``r`` of
``P`` streams shards ``r, r + P, ...`` of that order, and each process takes the same number of
batches per epoch (the smallest share's full batches; the rest of the epoch is dropped, as the
last incomplete batch is). A run resumed at a step skips exactly the samples an uninterrupted
run had used: only tar headers are read while skipping. Samples whose image or caption cannot
be read are skipped and reported like unreadable images in a caption file.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import tarfile
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from ..errors import InvalidArgumentError, ShardError
from ..io.atomic import atomic_write_file
from .data import Skipped, epoch_order
from .records import CaptionRecord, read_records

#: Image extensions a sample may carry, in order of preference.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_CHOICES = re.compile(r"\{([^{}]*,[^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """Shell-style brace expansion as WebDataset patterns use it: ``{00000..00999}`` (numeric
    range, zero padding kept from the first bound) and ``{a,b,c}``; several groups multiply."""
    found = [m for m in (_RANGE.search(pattern), _CHOICES.search(pattern)) if m is not None]
    if not found:
        return [pattern]
    match = min(found, key=lambda m: m.start())  # the leftmost group varies slowest, as in a shell
    if match.re is _RANGE:
        first, last = match.group(1), match.group(2)
        width = len(first) if first.startswith("0") else 0
        step = 1 if int(last) >= int(first) else -1
        options = [str(n).zfill(width) for n in range(int(first), int(last) + step, step)]
    else:
        options = match.group(1).split(",")
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [expanded for option in options for expanded in expand_braces(head + option + tail)]


def is_shard_pattern(data: str | os.PathLike) -> bool:
    """Whether ``--data`` names tar shards (a ``.tar`` path or pattern) rather than a caption file."""
    return str(data).endswith(".tar")


def shard_paths(pattern: str | os.PathLike) -> list[Path]:
    """The tar files of a pattern, in pattern order; every one must exist."""
    paths = [Path(name).expanduser() for name in expand_braces(str(pattern))]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise ShardError(
            f"{len(missing)} of the {len(paths)} shard(s) of {pattern} do not exist (first: {missing[0]}); "
            "fix the --data pattern, e.g. 'shards/{00000..00099}.tar'"
        )
    return paths


def _split_name(name: str) -> tuple[str, str]:
    """``dir/000042.seg.json`` -> (``dir/000042``, ``seg.json``): WebDataset's key and extension."""
    folder, _, base = name.rpartition("/")
    key, _, extension = base.partition(".")
    return (f"{folder}/{key}" if folder else key), extension.lower()


def iter_tar_samples(path: str | os.PathLike, wanted: Callable[[int], bool] = lambda _: True) -> Iterator:
    """``(position, key, {extension: bytes})`` for every sample of a tar file, in file order;
    the member contents are read only for positions where ``wanted(position)`` (others give an
    empty dict, from their headers alone)."""
    with tarfile.open(path, mode="r:") as archive:
        position, key, files = -1, None, {}  # type: tuple[int, str | None, dict[str, bytes]]
        for member in archive:
            if not member.isfile():
                continue
            member_key, extension = _split_name(member.name)
            if member_key != key:
                if key is not None:
                    yield position, key, files
                position, key, files = position + 1, member_key, {}
            if wanted(position):
                handle = archive.extractfile(member)
                files[extension] = handle.read() if handle is not None else b""
        if key is not None:
            yield position, key, files


def count_samples(path: str | os.PathLike) -> int:
    """Samples in a tar file, from its headers only."""
    return sum(1 for _ in iter_tar_samples(path, wanted=lambda _: False))


def sample_caption(files: dict[str, bytes], name: str) -> CaptionRecord:
    """The caption pair of a sample: ``json`` (``caption``, optional ``short_caption``) or ``txt``."""
    if "json" in files:
        entry = json.loads(files["json"].decode("utf-8"))
        if not isinstance(entry, dict) or not entry.get("caption"):
            raise InvalidArgumentError("its json has no 'caption'")
        return CaptionRecord.make(name, entry["caption"], entry.get("short_caption"))
    if "txt" in files:
        return CaptionRecord.make(name, files["txt"].decode("utf-8"))
    raise InvalidArgumentError("it has no .json or .txt caption")


def decode_sample(files: dict[str, bytes], name: str, transform: Callable | None):
    """``(pixel_values, caption, short_caption)`` of a sample, or :class:`~.data.Skipped` with
    the reason; ``transform=None`` reads the caption only (image features come from a cache)."""
    try:
        record = sample_caption(files, name)
        if transform is None:
            return None, record.caption, record.short_caption
        extension = next((e for e in IMAGE_EXTENSIONS if e in files), None)
        if extension is None:
            raise InvalidArgumentError(f"it has no image ({', '.join(IMAGE_EXTENSIONS)})")
        with Image.open(io.BytesIO(files[extension])) as image:
            pixels = transform(image)
    except (OSError, ValueError, UnicodeDecodeError, Image.DecompressionBombError) as exc:
        return Skipped(name, f"{type(exc).__name__}: {exc}")
    return pixels, record.caption, record.short_caption


@dataclass(frozen=True)
class ShardSet:
    """The tar files of a run and the samples in each (counted once, from headers)."""

    paths: tuple[Path, ...]
    counts: tuple[int, ...]

    @classmethod
    def open(cls, pattern: str | os.PathLike, show_progress: bool = True) -> ShardSet:
        paths = shard_paths(pattern)
        counts = [count_samples(p) for p in tqdm(paths, desc="counting samples", disable=not show_progress)]
        return cls(tuple(paths), tuple(counts))

    def assignment(self, seed: int, epoch: int, num_processes: int, rank: int) -> list[int]:
        """Indices of the shards process ``rank`` streams in ``epoch``, in streaming order."""
        if len(self.paths) < num_processes:
            raise ShardError(
                f"{len(self.paths)} shard(s) cannot be split over {num_processes} processes; "
                "write at least one shard per process (make-shards --samples-per-shard)"
            )
        return epoch_order(len(self.paths), seed, epoch)[rank::num_processes].tolist()

    def batches_per_epoch(self, seed: int, epoch: int, num_processes: int, batch_size: int) -> int:
        """Full batches every process can take in ``epoch``: the smallest share decides."""
        shares = [
            sum(self.counts[i] for i in self.assignment(seed, epoch, num_processes, rank))
            for rank in range(num_processes)
        ]
        return min(shares) // batch_size

    def total_steps(self, args, num_processes: int) -> int:
        """``--max-steps``, or the batches of ``--epochs`` epochs; raises when an epoch has none."""
        per_epoch = [
            self.batches_per_epoch(args.seed, epoch, num_processes, args.batch_size)
            for epoch in range(args.epochs or 1)
        ]
        if min(per_epoch) == 0:
            raise ShardError(
                f"the {sum(self.counts)} samples in {len(self.paths)} shard(s) give a process no full batch of "
                f"{args.batch_size} in some epoch; lower --batch-size or write more samples per shard"
            )
        return args.max_steps or sum(per_epoch)


class ShardStream(IterableDataset):
    """Samples ``start .. stop - 1`` of the concatenated ``shards``, decoded by
    :func:`decode_sample`, or with ``features`` (``(shard index, position, name) -> tensor``) the
    cached image features in place of the images. Across DataLoader workers, worker ``w`` of ``W``
    decodes positions ``w, w + W, ...``; a loader with ``batch_size=None`` hands them back in
    stream order."""

    def __init__(
        self,
        shard_set: ShardSet,
        shards: Sequence[int],
        start: int,
        stop: int,
        transform: Callable | None,
        features: Callable[[int, int, str], torch.Tensor | Skipped] | None = None,
    ):
        self.shard_set = shard_set
        self.shards = list(shards)
        self.start, self.stop = start, stop
        self.transform = None if features is not None else transform
        self.features = features

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        offset = 0
        for shard in self.shards:
            count = self.shard_set.counts[shard]
            first, offset = offset, offset + count
            if offset <= self.start:
                continue  # wholly before the resume point: not even opened
            if first >= self.stop:
                return

            def mine(position: int, first: int = first) -> bool:
                index = first + position
                return self.start <= index < self.stop and (index - self.start) % workers == worker

            path = self.shard_set.paths[shard]
            for position, key, files in iter_tar_samples(path, wanted=mine):
                if not mine(position):
                    continue
                name = f"{path.name}/{key}"
                item = decode_sample(files, name, self.transform)
                if self.features is not None and not isinstance(item, Skipped):
                    cached = self.features(shard, position, name)
                    item = cached if isinstance(cached, Skipped) else (cached, item[1], item[2])
                yield item


def shard_epoch_batches(
    shard_set: ShardSet,
    collate: Callable[[list], dict],
    args,
    accelerator,
    progress,
    transform: Callable | None,
    features: Callable[[int, int, str], torch.Tensor | Skipped] | None = None,
) -> Generator[dict, None, None]:
    """This process's batches from tar shards, epoch after epoch without end, from the data
    position in ``progress`` on (the counterpart of :func:`~.loop.epoch_batches`)."""
    processes, rank = accelerator.num_processes, accelerator.process_index
    while True:
        batches = shard_set.batches_per_epoch(args.seed, progress.epoch, processes, args.batch_size)
        stream = ShardStream(
            shard_set,
            shard_set.assignment(args.seed, progress.epoch, processes, rank),
            start=progress.batch_in_epoch * args.batch_size,
            stop=batches * args.batch_size,
            transform=transform,
            features=features,
        )
        items = iter(DataLoader(stream, batch_size=None, num_workers=args.num_workers, collate_fn=_as_is))
        while progress.batch_in_epoch < batches:
            chunk = list(itertools.islice(items, args.batch_size))
            progress.batch_in_epoch += 1
            yield collate(chunk)
        progress.epoch += 1
        progress.batch_in_epoch = 0


def _as_is(item):
    return item


def write_shards(
    data: str | os.PathLike,
    output_dir: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    samples_per_shard: int = 10_000,
    name_format: str = "{:05d}.tar",
) -> list[Path]:
    """Write the pairs of a caption file (ShareGPT4V json, json, jsonl or csv, as ``--data``
    reads them) into tar shards of ``samples_per_shard`` samples each: the image file's bytes as
    they are (``KEY.jpg``, ``.png``, ...) and ``KEY.json`` with ``caption`` and ``short_caption``.
    Images that cannot be read are left out and listed in ``OUTPUT_DIR/skipped.json``; each shard
    is written atomically, so an interrupted run leaves only whole shards. Returns the shard paths."""
    if samples_per_shard < 1:
        raise InvalidArgumentError(f"--samples-per-shard must be positive; got {samples_per_shard}")
    records = read_records(Path(data))
    root = Path(image_root) if image_root is not None else None
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    skipped: list[dict[str, str]] = []
    written: list[Path] = []
    groups = range(0, len(records), samples_per_shard)
    for shard, first in enumerate(tqdm(groups, desc="writing shards", unit="shard")):
        target = output_dir / name_format.format(shard)
        with atomic_write_file(target) as staging, tarfile.open(staging, mode="w") as archive:
            for index, record in enumerate(records[first : first + samples_per_shard], first):
                path = Path(record.image)
                path = path if root is None or path.is_absolute() else root / path
                try:
                    extension, payload = _image_payload(path)
                except (OSError, ValueError, Image.DecompressionBombError) as exc:
                    skipped.append({"image": str(path), "reason": f"{type(exc).__name__}: {exc}"})
                    continue
                key = f"{index:09d}"
                caption = {"caption": record.caption, "short_caption": record.short_caption, "image": record.image}
                _add_member(archive, f"{key}.{extension}", payload)
                _add_member(archive, f"{key}.json", json.dumps(caption, ensure_ascii=False).encode("utf-8"))
        written.append(target)
    with atomic_write_file(output_dir / "skipped.json") as staging:
        staging.write_text(json.dumps(skipped, indent=2))
    return written


def _image_payload(path: Path) -> tuple[str, bytes]:
    """The image's extension and bytes as stored in a shard: the file as it is when its format
    is one of :data:`IMAGE_EXTENSIONS`, else re-encoded as PNG; raises when it does not decode."""
    payload = path.read_bytes()
    with Image.open(io.BytesIO(payload)) as image:
        image.load()
        extension = path.suffix.lower().lstrip(".")
        if extension in IMAGE_EXTENSIONS:
            return extension, payload
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return "png", buffer.getvalue()


def _add_member(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(payload))
