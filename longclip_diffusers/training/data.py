"""Image-caption batches for contrastive training.

Images are decoded and captions tokenized in DataLoader workers. An image that is missing or
cannot be decoded is dropped from its batch and reported in the batch's ``skipped`` list, so a
long run never dies on one bad file. The order of samples is a pure function of the seed and
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

from ..io.image_preprocessing import ClipImageTransform
from .records import CaptionRecord


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
        path = Path(record.image)
        return path if self.image_root is None or path.is_absolute() else self.image_root / path

    def __getitem__(self, index: int):
        record = self.records[index]
        path = self.image_path(record)
        try:
            with Image.open(path) as image:
                pixels = self.transform(image)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            return Skipped(str(path), f"{type(exc).__name__}: {exc}")
        return pixels, record.caption, record.short_caption


class CaptionTokens:
    """Captions -> token ids ``[N, max_length]``, padded and cut (EOT forced last); the model
    trims the padding (:func:`~.text_encoding.trim_to_longest`). Picklable, so it can collate
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
