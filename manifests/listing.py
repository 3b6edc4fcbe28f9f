"""The files a manifest lists, each with what it must hold: the input of verify, pack and unpack.

A folder dataset stores them under their relative paths; a packed dataset stores them as tar
members named `<item_id>.<name><suffix>` (webdataset's key.extension convention), plus one
`<item_id>.json` per item holding its rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from manifests.checksum import bytes_checksum
from manifests.dataset import Dataset
from manifests.errors import ManifestError
from manifests.records import ItemRecord, StemRecord
from manifests.schema import MIXTURE
from manifests.tables import plain_row

JSON_MEMBER = "json"
SHARDS_INDEX = "shards.json"
"""Marks a packed dataset: shard names, sizes and the items in each (written by `pack`)."""


@dataclass(frozen=True)
class ListedFile:
    """One file of one item. `frames` is None for members that are not audio (the json)."""

    item_id: str
    name: str
    path: str
    checksum: str
    bytes: int
    frames: int | None = None
    channels: int | None = None
    sample_rate: int | None = None

    @property
    def member(self) -> str:
        """Its name in a shard: webdataset splits the key from the name at the first dot."""
        key = sample_key(self.item_id)
        if self.frames is None:
            return f"{key}.{self.name}"
        return f"{key}.{self.name}{PurePosixPath(self.path).suffix}"


def sample_key(item_id: str) -> str:
    """The webdataset key of an item: its id with `%` and `.` percent-encoded, since webdataset
    cuts a member's name at its first dot and validation songs have dots in their names
    (`Mr. So & So - Eyes`). Rendered ids (digits) are their own keys."""
    return item_id.replace("%", "%25").replace(".", "%2E")


def audio_paths(items: pd.DataFrame, stems: pd.DataFrame) -> list[str]:
    """Every audio file the tables list, as paths relative to the dataset root."""
    return [*items["mixture_path"], *stems["path"]]


def is_packed(root: Path) -> bool:
    return (root / SHARDS_INDEX).is_file()


def require_folder_form(dataset: Dataset) -> None:
    """Tools that link or read audio by path need the folder form, not a shard folder."""
    if is_packed(dataset.root):
        raise ManifestError(
            f"{dataset.root} is a packed dataset (shards); run `msaug unpack` on it first"
        )


def audio_files(dataset: Dataset) -> dict[str, list[ListedFile]]:
    """Per item id (in table order): its mixture, then its stems in the dataset's stem order.

    Stem rows of items that are not in the items table are left out (verify reports them)."""
    files: dict[str, list[ListedFile]] = {}
    shapes = {}
    for row in dataset.items.itertuples(index=False):
        shape = (int(row.num_frames), int(row.channels), int(row.sample_rate))
        shapes[row.item_id] = shape
        files[row.item_id] = [
            ListedFile(row.item_id, MIXTURE, row.mixture_path, row.checksum, int(row.bytes), *shape)
        ]
    rank = {name: i for i, name in enumerate(dataset.stem_names)}
    stems = dataset.stems.iloc[dataset.stems["stem"].map(rank).argsort(kind="stable")]
    for row in stems[stems["item_id"].isin(shapes)].itertuples(index=False):
        entry = ListedFile(
            row.item_id, row.stem, row.path, row.checksum, int(row.bytes), *shapes[row.item_id]
        )
        files[row.item_id].append(entry)
    return files


def _json_bytes(item: dict[str, Any], stems: dict[str, dict[str, Any]]) -> bytes:
    payload = {"item": item, "stems": stems}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def sample_json(item: ItemRecord, stems: list[StemRecord]) -> bytes:
    """The `json` member of a sample: the item row and its stem rows (the effect chain as a
    native list, the typed effect columns left out), in a fixed byte form."""
    return _json_bytes(item.to_dict(), {s.stem: s.to_dict() for s in stems})


def sample_jsons(dataset: Dataset) -> dict[str, bytes]:
    """Per item id, its json member: for a schema-1 dataset as schema 1 packed it (its rows
    as stored), so its shards still verify and unpack."""
    if dataset.v1_tables is not None:
        items, stems = ([plain_row(r) for r in f.to_dict("records")] for f in dataset.v1_tables)
        by_item: dict[str, dict[str, dict[str, Any]]] = {row["item_id"]: {} for row in items}
        for row in stems:
            by_item[row["item_id"]][row["stem"]] = row
        return {row["item_id"]: _json_bytes(row, by_item[row["item_id"]]) for row in items}
    records: dict[str, list[StemRecord]] = {item_id: [] for item_id in dataset.items["item_id"]}
    for record in dataset.stem_records():
        records[record.item_id].append(record)
    return {
        row["item_id"]: sample_json(ItemRecord.from_dict(row), records[row["item_id"]])
        for row in dataset.items.to_dict("records")
    }


def sample_files(dataset: Dataset, jsons: dict[str, bytes]) -> dict[str, list[ListedFile]]:
    """Per item id: the members of its webdataset sample (audio files, then the json)."""
    files = audio_files(dataset)
    for item_id, members in files.items():
        data = jsons[item_id]
        members.append(
            ListedFile(
                item_id, JSON_MEMBER, f"{item_id}.{JSON_MEMBER}", bytes_checksum(data), len(data)
            )
        )
    return files
