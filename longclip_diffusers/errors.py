"""Exceptions raised by longclip-diffusers. Each message names the problem and the fix."""

from __future__ import annotations


class LongClipError(Exception):
    """Base class of every error this library raises on purpose."""


class CheckpointError(LongClipError, ValueError):
    """A checkpoint file is unreadable, unsafe, or not a CLIP state dict."""


class IncompatibleEncoderError(LongClipError, ValueError):
    """An encoder does not fit where it is used: a pipeline slot, a tokenizer, a training stage."""


class UnsupportedModelError(LongClipError, TypeError):
    """A function was given a model of a class it does not take (e.g. a ``CLIPModel`` where a
    text encoder is expected)."""


class InvalidArgumentError(LongClipError, ValueError):
    """An argument or option is out of range, unknown, or contradicts another one."""


class DataFormatError(LongClipError, ValueError):
    """A data file (captions, a prompt list, data-set annotations, class names) is not in the
    layout it should be in."""


class InputNotFoundError(LongClipError, FileNotFoundError):
    """A file or folder given as input does not exist, or does not hold what it should."""


class OutputExistsError(LongClipError, FileExistsError):
    """An output path exists and overwriting was not asked for."""


class ModelNotAvailableError(LongClipError, OSError):
    """A model cannot be found locally and the hub cannot be reached."""


class MissingDependencyError(LongClipError, ImportError):
    """An optional dependency a feature needs is not installed."""


class TrainingDivergedError(LongClipError, FloatingPointError):
    """The training loss stopped being a finite number."""


class TextTooLongError(LongClipError, RuntimeError):
    """A text has more tokens than the model reads and truncation was not asked for (a
    ``RuntimeError``, as the released ``longclip.tokenize`` raises)."""


class UnsupportedOptionError(LongClipError, ValueError):
    """An option of a released API that this port does not provide."""


class PathKindError(LongClipError, ValueError):
    """A path names a file where a folder is needed, or a folder where a file is."""


class DeviceNotAvailableError(LongClipError, ValueError):
    """A torch device was asked for that this machine does not have."""


class VocabularyMismatchError(CheckpointError):
    """A checkpoint's vocabulary does not hold the start/end token ids it is converted with."""

    def __init__(self, message: str, vocab_size: int | None = None):
        super().__init__(message)
        self.vocab_size = vocab_size


class UnreadableDataError(LongClipError, ValueError):
    """Training cannot make progress: too many of its images cannot be read."""


class ServerAddressError(LongClipError, OSError):
    """A server cannot listen where it was told: the port is taken, or the host is not this machine."""


class FeatureCacheError(LongClipError, ValueError):
    """A feature cache does not belong to this data or model, or is incomplete."""


class ShardError(LongClipError, ValueError):
    """A shard pattern names no usable tar files."""
