"""Merging datasets into one (`msaug merge`): renders made on several machines, or with
several configs, become one training set without losing where each item came from.

Item ids are only unique within a render (`0000000`, `0000001`, ...), so two renders collide.
The first part keeps its ids; a later part's colliding id gets the prefix `p<part index>-`,
and its audio moves to the folder of the new id. Renaming is a pure function of the parts and
their order, so the same merge always gives the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pandas as pd

from manifests.dataset import Dataset
from manifests.derive import Written, derived_header, new_folder, place_file, write_manifest
from manifests.errors import ManifestError
from manifests.listing import audio_paths, require_folder_form
from manifests.schema import item_dir
from manifests.tables import with_effect_columns
from manifests.writer import sorted_tables


def new_ids(id_lists: Sequence[Sequence[str]]) -> list[dict[str, str]]:
    """Per part, the renamed ids (old -> new) that make all ids unique across parts."""
    every = {item_id for ids in id_lists for item_id in ids}
    taken: set[str] = set()
    renames = []
    for index, ids in enumerate(id_lists):
        renamed = {}
        for item_id in ids:
            new = item_id
            while new in taken or (new != item_id and new in every):
                new = f"p{index}-{new}"
            if new != item_id:
                renamed[item_id] = new
            taken.add(new)
        renames.append(renamed)
    return renames


def _labels(roots: Sequence[Path]) -> list[str]:
    """Folder names, suffixed with the part index where two parts share a name."""
    names = [root.resolve().name for root in roots]
    return [name if names.count(name) == 1 else f"{name}-{i}" for i, name in enumerate(names)]


def _check_compatible(parts: Sequence[Dataset]) -> None:
    first = parts[0]
    for part in parts[1:]:
        if part.stem_names != first.stem_names:
            raise ManifestError(
                f"cannot merge {first.root} (stems {list(first.stem_names)}) with {part.root} "
                f"(stems {list(part.stem_names)}): every item of a dataset has the same stems"
            )
        if part.sample_rate != first.sample_rate:
            raise ManifestError(
                f"cannot merge {first.root} ({first.sample_rate} Hz) with {part.root} "
                f"({part.sample_rate} Hz): datasets of different sample rates do not mix; "
                "render them at one rate"
            )


def _union_effect_columns(parts: Sequence[Dataset]) -> dict[str, list[str]]:
    """Every part's declared effect columns, in first-seen order (parts written by different
    msaug releases may declare different effects)."""
    declared: dict[str, list[str]] = {}
    for part in parts:
        for kind, params in part.header["effect_columns"].items():
            known = declared.setdefault(kind, [])
            known += [p for p in params if p not in known]
    return declared


def _shards_of_one_render(parts: Sequence[Dataset]) -> bool:
    """Parts of one render split with `--shard`: same identity, disjoint items."""
    identity = parts[0].header.get("identity")
    ids = [set(part.items["item_id"]) for part in parts]
    return (
        isinstance(identity, dict)
        and "merge" not in identity
        and all(part.header.get("identity") == identity for part in parts)
        and sum(map(len, ids)) == len(set().union(*ids))
    )


def _without_repeated_songs(parts: Sequence[Dataset]) -> list[Dataset]:
    """Each validation song once: renders of the same sources all carry the same songs, which
    must keep their names (musdb finds them by name), so later copies are dropped. The same
    name with other audio is refused rather than renamed."""
    seen: dict[str, tuple[str, ...]] = {}
    kept = []
    for part in parts:
        repeated = []
        for song in part.items.loc[
            part.items["role"] == "valid", ["item_id", "checksum"]
        ].itertuples():
            rows = part.stems[part.stems["item_id"] == song.item_id]
            content = (song.checksum, *sorted(rows["checksum"]))
            if song.item_id not in seen:
                seen[song.item_id] = content
            elif seen[song.item_id] == content:
                repeated.append(song.item_id)
            else:
                raise ManifestError(
                    f"validation song {song.item_id!r} of {part.root} differs from the one of "
                    "an earlier part; merge renders of the same sources"
                )
        if repeated:
            part = part.rows_of(set(part.items["item_id"]) - set(repeated), where=part.where)
        kept.append(part)
    return kept


def _moved(path: str, subset: str, item_id: str) -> str:
    return str(item_dir(subset, item_id) / PurePosixPath(path).name)


def _renamed_tables(
    part: Dataset, renamed: dict[str, str], label: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    items = part.items.copy()
    stems = part.stems.copy()
    old_ids = items["item_id"]
    subset = dict(zip(old_ids, items["subset"], strict=True))
    items["item_id"] = old_ids.map(lambda i: renamed.get(i, i))
    items["mixture_path"] = [
        _moved(path, s, new) if old in renamed else path
        for path, s, old, new in zip(
            items["mixture_path"], items["subset"], old_ids, items["item_id"], strict=True
        )
    ]
    items["origin"] = [label if not o else f"{label}/{o}" for o in items["origin"]]
    stems["path"] = [
        _moved(path, subset[old], renamed[old]) if old in renamed else path
        for path, old in zip(stems["path"], stems["item_id"], strict=True)
    ]
    stems["item_id"] = stems["item_id"].map(lambda i: renamed.get(i, i))
    return items, stems


def merge(
    roots: Sequence[str | Path], out: str | Path, copy: bool = False, command: str | None = None
) -> Written:
    """Write the union of the datasets at `roots` to `out`, keeping every row of every part."""
    roots = [Path(root) for root in roots]
    if len(roots) < 2:
        raise ManifestError("merge needs at least two datasets")
    parts = [Dataset.open(root) for root in roots]
    for part in parts:
        require_folder_form(part)
    _check_compatible(parts)
    labels = _labels(roots)
    rejoin = _shards_of_one_render(parts)
    if rejoin:
        # Shards rejoin into the single render they split: same ids, identity and row order,
        # so the tables equal those of an unsharded run and `rerender` still works.
        renames = [{} for _ in parts]
        tables = [(p.items, p.stems) for p in parts]
    else:
        parts = _without_repeated_songs(parts)
        renames = new_ids([list(part.items["item_id"]) for part in parts])
        tables = [
            _renamed_tables(p, r, label) for p, r, label in zip(parts, renames, labels, strict=True)
        ]
    items = pd.concat([t[0] for t in tables], ignore_index=True)
    stems = pd.concat([t[1] for t in tables], ignore_index=True)
    header = derived_header(parts[0].header, command)
    header["effect_columns"] = _union_effect_columns(parts)
    stems = with_effect_columns(stems, header["effect_columns"])
    if rejoin:
        items, stems = sorted_tables(items, stems, parts[0].stem_names)
        header["identity"] = parts[0].header["identity"]
    else:
        header["identity"] = {"merge": [part.header.get("identity") for part in parts]}
    header["parts"] = [
        {
            "label": label,
            "root": str(part.root.resolve()),
            "manifest_checksum": part.manifest_checksum(),
            "renamed_ids": len(renamed),
            "header": part.header,
        }
        for part, label, renamed in zip(parts, labels, renames, strict=True)
    ]
    linked = 0
    with new_folder(out, sources=roots) as folder:
        for part, (part_items, part_stems) in zip(parts, tables, strict=True):
            sources = audio_paths(part.items, part.stems)
            targets = audio_paths(part_items, part_stems)
            for source, target in zip(sources, targets, strict=True):
                linked += place_file(part.path(source), folder / target, copy)
        write_manifest(folder, header, items, stems)
    n_files = len(items) + len(stems)
    return Written(Path(out), len(items), linked, n_files - linked)
