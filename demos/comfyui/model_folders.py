"""Text-encoder files in ComfyUI's model folders, through ComfyUI's ``folder_paths`` module.

Outside ComfyUI (``folder_paths`` not importable) only a typed path or hub id is offered.
"""

from __future__ import annotations

import os

#: ComfyUI's current folder name first; older installs only know ``clip`` (newer ones map
#: ``clip`` onto ``text_encoders``, which then lists both ``models/clip`` and
#: ``models/text_encoders``); ``checkpoints`` for the text encoders inside SD checkpoints.
FOLDER_NAMES = ("text_encoders", "clip", "checkpoints")

#: The first entry of the file list: use the text field instead.
TYPED_SOURCE = "(path or hub id below)"


def _folder_paths():
    try:
        import folder_paths
    except ImportError:
        return None
    return folder_paths


def _folders(folder_paths) -> list[str]:
    return [name for name in FOLDER_NAMES if name in folder_paths.folder_names_and_paths]


def model_choices() -> list[str]:
    """:data:`TYPED_SOURCE`, then every file of the text-encoder folders."""
    folder_paths = _folder_paths()
    names: set[str] = set()
    if folder_paths is not None:
        for folder in _folders(folder_paths):
            names.update(folder_paths.get_filename_list(folder))
    return [TYPED_SOURCE, *sorted(names)]


def resolve_source(choice: str, typed_source: str) -> str:
    """The path or hub id to load for a file-list choice and the text field.

    A file inside a transformers model directory (one with ``config.json`` beside it) resolves
    to that directory, so its config and tokenizer come with the weights.
    """
    if choice == TYPED_SOURCE:
        source = typed_source.strip()
        if not source:
            raise ValueError(
                "no text encoder chosen: pick a file from the list, or type a path or hub id "
                "(e.g. BeichenZhang/LongCLIP-L) into the text field"
            )
        return source
    folder_paths = _folder_paths()
    path = None
    if folder_paths is not None:
        for folder in _folders(folder_paths):
            path = folder_paths.get_full_path(folder, choice)
            if path:
                break
    if not path:
        raise FileNotFoundError(
            f"{choice!r} is not in ComfyUI's text_encoders/clip/checkpoints model folders; refresh the node "
            "list or type its path into the text field"
        )
    directory = os.path.dirname(path)
    if os.path.isfile(os.path.join(directory, "config.json")):
        return directory
    return path
