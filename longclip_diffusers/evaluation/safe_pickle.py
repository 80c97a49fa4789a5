"""Read the CIFAR python batches without letting the pickle run code.

``pickle.load`` calls whatever callable a file names, so an untrusted pickle can execute
anything. The CIFAR batches only need plain containers (dict, list, str, bytes, int) and numpy
arrays; the only globals a numpy array pickle names are ``numpy.ndarray``, ``numpy.dtype`` and
the array reconstructor, which build an empty array and fill it with raw bytes; a batch
re-saved by Python 3 at protocol 2 also names ``_codecs.encode`` for its byte strings (a pure
str -> bytes conversion). This unpickler resolves exactly those names and refuses every other
global, so a tampered file raises :class:`~longclip_diffusers.DataFormatError` instead of running code.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np

from ..errors import DataFormatError

#: numpy's array reconstructor, taken from numpy itself (its module moved in numpy 2).
_RECONSTRUCT = np.empty(0).__reduce__()[0]

#: (module, name) pairs a numpy array pickle may name; numpy 2 renamed ``numpy.core``.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("_codecs", "encode"): codecs.encode,
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def load_array_pickle(path: str | Path):
    """Unpickle ``path`` allowing only containers and numpy arrays.

    Byte strings of Python 2 pickles (the CIFAR batches) stay ``bytes``, so dict keys read
    ``b"data"``, ``b"labels"``.
    """
    try:
        return _ArraysOnlyUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataFormatError(
            f"{path} is not a plain data pickle ({exc}); re-download the original batch files"
        ) from exc
