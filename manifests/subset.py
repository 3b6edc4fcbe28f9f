"""Writing a selection of a dataset as a dataset of its own (`msaug select`).

An ablation ("no pitch shift on vocals", "incoherent items only") becomes a folder the trainer
and every other tool open like any render; its dataset.json says which parent and which query
it came from, so the rows can be traced back.
"""

from __future__ import annotations

from pathlib import Path

from manifests.dataset import Dataset
from manifests.derive import Written, derived_header, new_folder, place_file, write_manifest
from manifests.listing import audio_paths, require_folder_form


def write_selection(
    selection: Dataset, out: str | Path, copy: bool = False, command: str | None = None
) -> Written:
    """Write `selection` (from `Dataset.select`) to `out` with its audio linked or copied."""
    require_folder_form(selection)
    header = derived_header(selection.header, command)
    header["where"] = selection.where
    header["parent"] = {
        "root": str(selection.root.resolve()),
        "manifest_checksum": selection.manifest_checksum(),
        "header": selection.header,
    }
    linked = 0
    paths = audio_paths(selection.items, selection.stems)
    with new_folder(out, sources=[selection.root]) as folder:
        for relative in paths:
            linked += place_file(selection.path(relative), folder / relative, copy)
        write_manifest(folder, header, selection.items, selection.stems)
    return Written(Path(out), len(selection), linked, len(paths) - linked)
