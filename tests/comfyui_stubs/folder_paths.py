"""Stand-in for ComfyUI's ``folder_paths`` module (Comfy-Org/ComfyUI v0.3.64), for the node tests.

It has the part of the real module's API the nodes use (``folder_names_and_paths``,
``get_filename_list``, ``get_full_path``, ``get_folder_paths``); a test fills
``folder_names_and_paths`` with directories under its ``tmp_path``. Like ComfyUI it lists model
files recursively, as paths relative to their folder with ``/`` separators.
"""

from __future__ import annotations

import os

supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

#: folder name -> (directories, extensions), the shape of ComfyUI's own table.
folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}


def get_folder_paths(folder_name: str) -> list[str]:
    return list(folder_names_and_paths.get(folder_name, ([], set()))[0])


def get_filename_list(folder_name: str) -> list[str]:
    directories, extensions = folder_names_and_paths[folder_name]
    names = []
    for directory in directories:
        for root, _, files in os.walk(directory):
            for file in files:
                if os.path.splitext(file)[1] in extensions:
                    relative = os.path.relpath(os.path.join(root, file), directory)
                    names.append(relative.replace(os.sep, "/"))
    return sorted(set(names))


def get_full_path(folder_name: str, filename: str) -> str | None:
    for directory in get_folder_paths(folder_name):
        path = os.path.join(directory, filename)
        if os.path.isfile(path):
            return path
    return None
