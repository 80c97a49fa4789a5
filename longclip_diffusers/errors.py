"""Exceptions raised by longclip-diffusers. Each message names the problem and the fix."""

from __future__ import annotations


class LongClipError(Exception):
    """Base class of every error this library raises on purpose."""


class CheckpointError(LongClipError, ValueError):
    """A checkpoint file is unreadable, unsafe, or not a CLIP state dict."""


class IncompatibleEncoderError(LongClipError, ValueError):
    """An encoder does not fit the slot of the pipeline it was meant for."""


class OutputExistsError(LongClipError, FileExistsError):
    """An output path exists and overwriting was not asked for."""


class ModelNotAvailableError(LongClipError, OSError):
    """A model cannot be found locally and the hub cannot be reached."""


class MissingDependencyError(LongClipError, ImportError):
    """An optional dependency a feature needs is not installed."""


class TextTooLongError(LongClipError, RuntimeError):
    """A text has more tokens than the model reads and truncation was not asked for (a
    ``RuntimeError``, as the released ``longclip.tokenize`` raises)."""


class UnsupportedOptionError(LongClipError, ValueError):
    """An option of a released API that this port does not provide."""


class DataFormatError(LongClipError, ValueError):
    """A data file (a prompt list, a caption file) is not in the layout it should be in."""
