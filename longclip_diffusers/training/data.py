"""Image-caption batches for contrastive training.

Images are decoded and captions tokenized in DataLoader workers. An image that is missing or
cannot be decoded is dropped from its batch and reported in the batch's ``skipped`` list, so a
long run never dies on one bad file; :func:`check_image_data` refuses, before a run starts, data
of which not one image can be read. The order of samples is a pure function of the seed and
the epoch, and a run can start at any global batch: resuming continues with exactly the
batches an uninterrupted run would have seen, and P processes with batch B see the same global
batches, in the same row order, as one process with batch P x B.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..errors import PathKindError, UnreadableDataError
from ..io.image_preprocessing import ClipImageTransform
from .records import CaptionRecord

#: What reading a missing, truncated or hostile image raises.
UNREADABLE = (OSError, ValueError, Image.DecompressionBombError)
#: Images :func:`check_image_data` tries before a run: if none of them can be read, no batch can.
PROBED_IMAGES = 16
#: Share of unreadable images a run tolerates by default (``--max-unreadable``): a few missing
#: files of a large download, not a wrong folder.
DEFAULT_MAX_UNREADABLE = 0.05
#: Images read before the unreadable share is judged: enough that a share of a few percent is
#: measured, not guessed from one unlucky batch.
UNREADABLE_JUDGED_AFTER = 256
#: Unreadable images listed by path (log, summary); the others are only counted.
LISTED_UNREADABLE = 10


@dataclass(frozen=True)
class Skipped:
    """An unusable sample: the image path and why."""

    image: str
    reason: str


class ImageCaptionDataset(Dataset):
    """``records[i]`` -> ``(pixel_values, caption, short_caption)``, or :class:`Skipped`."""

    def __init__(self, records: Sequence[CaptionRecord], image_root: str | Path | None, transform: ClipImageTransform):
        self.records = list(records)
        self.image_root = Path(image_root) if image_root is not None else None
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def image_path(self, record: CaptionRecord) -> Path:
        return image_path(record, self.image_root)

    def __getitem__(self, index: int):
        record = self.records[index]
        path = self.image_path(record)
        try:
            with Image.open(path) as image:
                pixels = self.transform(image)
        except UNREADABLE as exc:
            return Skipped(str(path), _reason(exc))
        return pixels, record.caption, record.short_caption


def image_path(record: CaptionRecord, image_root: Path | None) -> Path:
    """Where ``record``'s image is: relative to ``image_root`` unless absolute."""
    path = Path(record.image)
    return path if image_root is None or path.is_absolute() else image_root / path


def check_image_data(records: Sequence[CaptionRecord], image_root: str | Path | None) -> None:
    """Refuse, before any model is loaded or anything written, image data no run can train on:
    an ``image_root`` that is a file, or not one of the first :data:`PROBED_IMAGES` images
    readable (a wrong ``--image-root`` would otherwise skip every image of every batch)."""
    root = Path(image_root) if image_root is not None else None
    if root is not None and root.exists() and not root.is_dir():
        raise PathKindError(
            f"--image-root {root} is a file. Fix: pass the folder the data file's image paths are relative to."
        )
    failures = []
    for record in records[:PROBED_IMAGES]:
        path = image_path(record, root)
        try:
            with Image.open(path) as image:
                image.load()
            return
        except UNREADABLE as exc:
            failures.append(f"{path}: {_reason(exc)}")
    if not failures:
        return
    if root is None:
        fix = "pass --image-root, the folder the data file's image paths are relative to"
    elif not root.is_dir():
        fix = f"--image-root {root} does not exist; pass the folder the data file's image paths are relative to"
    else:
        fix = f"check --image-root {root}: the data file's image paths are relative to it"
    raise UnreadableDataError(
        f"none of the first {len(failures)} images can be read (e.g. {failures[0]}). Fix: {fix}."
    )


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


class CaptionTokens:
    """Captions -> token ids ``[N, max_length]``, padded and cut (EOT forced last); the model
    trims the padding (:func:`~.trimmed_text.trim_to_longest`). Picklable, so it can collate
    caption batches in DataLoader workers."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, captions: list[str]) -> torch.Tensor:
        return self.tokenizer(
            captions, padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        ).input_ids


class CaptionBatchCollator:
    """Stacks images and tokenizes captions with :class:`CaptionTokens`."""

    def __init__(self, tokenizer, max_length: int, with_short: bool = True):
        self._ids = CaptionTokens(tokenizer, max_length)
        self.with_short = with_short

    def __call__(self, samples: list) -> dict:
        skipped = [s for s in samples if isinstance(s, Skipped)]
        good = [s for s in samples if not isinstance(s, Skipped)]
        batch = {"skipped": skipped, "size": len(good)}
        if not good:
            return batch
        batch["pixel_values"] = torch.stack([s[0] for s in good])
        batch["input_ids"] = self._ids([s[1] for s in good])
        batch["short_input_ids"] = self._ids([s[2] for s in good]) if self.with_short else None
        return batch


def batches_per_epoch(num_samples: int, global_batch: int) -> int:
    """Full global batches in one pass (the last, incomplete one is dropped, as released)."""
    return num_samples // global_batch


def epoch_order(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of ``epoch``: depends on nothing but the seed and the epoch."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_samples, generator=generator)


class ShardedBatchSampler:
    """This process's share of each global batch of one epoch, from ``start_batch`` on.

    Global batch ``k`` is ``order[k * B * P : (k + 1) * B * P]``; process ``r`` takes rows
    ``r * B : (r + 1) * B`` of it.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        num_processes: int,
        rank: int,
        seed: int,
        epoch: int,
        start_batch: int = 0,
    ):
        self.order = epoch_order(num_samples, seed, epoch)
        self.batch_size = batch_size
        self.global_batch = batch_size * num_processes
        self.offset = rank * batch_size
        self.start_batch = start_batch
        self.count = batches_per_epoch(num_samples, self.global_batch)

    def __len__(self) -> int:
        return max(self.count - self.start_batch, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for k in range(self.start_batch, self.count):
            first = k * self.global_batch + self.offset
            yield self.order[first : first + self.batch_size].tolist()


def make_loader(
    dataset: Dataset | Sequence, sampler: Iterable[list[int]], collator: Callable[[list], object], num_workers: int
) -> DataLoader:
    """A DataLoader that decodes in ``num_workers`` worker processes (0: in this process)."""
    return DataLoader(
        dataset,  # type: ignore[arg-type]  # DataLoader indexes any sequence; torch annotates only Dataset
        batch_sampler=sampler,
        collate_fn=collator,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
    )
