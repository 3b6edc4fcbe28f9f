"""Reading a dataset: schema checks, typed records, and the `--where` selection.

`Dataset.open(root)` is how `train` and every `msaug` command that reads a dataset get at it.
The tables are plain Parquet, so pandas, pyarrow and duckdb open them directly as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from manifests.checksum import file_checksum
from manifests.errors import ManifestError
from manifests.records import ItemRecord, StemRecord
from manifests.schema import (
    DATASET_JSON,
    ITEMS_FILE,
    ITEMS_SCHEMA,
    METADATA_KEY,
    SCHEMA_VERSION,
    STEM_NAMES,
    STEMS_FILE,
    STEMS_SCHEMA,
)

# Readers for older schema versions: version -> function upgrading (items, stems) by one version.
# Version 1 is the first, so there is nothing to migrate yet.
MIGRATIONS: dict[int, Any] = {}


def read_header(root: Path) -> dict[str, Any]:
    json_path = root / DATASET_JSON
    if not root.is_dir():
        raise ManifestError(
            f"dataset folder {root} does not exist; pass the --out folder of a render"
        )
    if not json_path.is_file():
        raise ManifestError(
            f"{root} is not an msaug dataset (no {DATASET_JSON}); pass the --out folder of a render"
        )
    try:
        header = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{json_path} is corrupt ({exc}); re-render or restore it") from exc
    version = header.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ManifestError(f"{json_path} has no valid schema_version; re-render the dataset")
    if version > SCHEMA_VERSION:
        raise ManifestError(
            f"{root} uses manifest schema {version}, newer than this msaug reads "
            f"({SCHEMA_VERSION}); upgrade msaug"
        )
    return header


def _read_table(path: Path, expected: Any) -> pd.DataFrame:
    if not path.is_file():
        raise ManifestError(
            f"{path} is missing; the render did not finish: rerun the same render command to resume"
        )
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ManifestError(
            f"{path} is not readable Parquet ({exc}); re-render or restore it"
        ) from exc
    version = int((table.schema.metadata or {}).get(METADATA_KEY, b"0"))
    if version > SCHEMA_VERSION:
        raise ManifestError(f"{path} uses manifest schema {version}; upgrade msaug")
    missing = set(expected.names) - set(table.schema.names)
    if version == SCHEMA_VERSION and missing:
        raise ManifestError(
            f"{path} lacks columns {sorted(missing)}; it does not match schema {version}"
        )
    return table.to_pandas()


@dataclass
class Dataset:
    """A rendered dataset, or a selection of one (`select`): same root, fewer rows."""

    root: Path
    header: dict[str, Any]
    items: pd.DataFrame
    stems: pd.DataFrame
    where: str | None = None
    _by_id: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, root: str | Path) -> Dataset:
        root = Path(root)
        header = read_header(root)
        items = _read_table(root / ITEMS_FILE, ITEMS_SCHEMA)
        stems = _read_table(root / STEMS_FILE, STEMS_SCHEMA)
        for version in range(header["schema_version"], SCHEMA_VERSION):
            items, stems = MIGRATIONS[version](items, stems)
        return cls(root, header, items, stems)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def sample_rate(self) -> int:
        rates = self.items["sample_rate"].unique()
        if len(rates) > 1:
            raise ManifestError(f"{self.root} mixes sample rates {sorted(rates)}; select one rate")
        return int(rates[0])

    @cached_property
    def wide(self) -> pd.DataFrame:
        """One row per item: item columns plus every stem column prefixed by the stem name.

        This is the frame `--where` queries run on, e.g.
        `mode == 'incoherent' and not vocals_pitch_applied`.
        """
        per_stem = []
        for stem in STEM_NAMES:
            part = self.stems[self.stems["stem"] == stem].drop(columns="stem")
            per_stem.append(part.set_index("item_id").add_prefix(f"{stem}_"))
        return self.items.join(pd.concat(per_stem, axis=1), on="item_id")

    def select(self, where: str | None) -> Dataset:
        """The items for which the pandas query `where` is true; None or '' selects all."""
        if not where:
            return self
        try:
            mask = self.wide.eval(where)
        except Exception as exc:  # pandas raises many types for a bad expression
            raise ManifestError(
                f"--where {where!r} is not a valid query over this dataset ({exc}); "
                "see `msaug select --help` for the column names"
            ) from exc
        if not (isinstance(mask, pd.Series) and mask.dtype == bool):
            raise ManifestError(f"--where {where!r} must be a true/false condition per item")
        ids = set(self.items.loc[mask.to_numpy(), "item_id"])
        if not ids:
            raise ManifestError(f"--where {where!r} selects no items of {len(self)} in {self.root}")
        items = self.items[self.items["item_id"].isin(ids)].reset_index(drop=True)
        stems = self.stems[self.stems["item_id"].isin(ids)].reset_index(drop=True)
        combined = where if self.where is None else f"({self.where}) and ({where})"
        return Dataset(self.root, self.header, items, stems, combined)

    def item(self, item_id: str) -> tuple[ItemRecord, dict[str, StemRecord]]:
        if not self._by_id:
            self._by_id = {iid: i for i, iid in enumerate(self.items["item_id"])}
        if item_id not in self._by_id:
            raise ManifestError(f"item {item_id!r} is not in {self.root}")
        record = ItemRecord.from_dict(self.items.iloc[self._by_id[item_id]].to_dict())
        rows = self.stems[self.stems["item_id"] == item_id]
        stems = {row["stem"]: StemRecord.from_dict(row) for row in rows.to_dict("records")}
        return record, stems

    def path(self, relative: str) -> Path:
        return self.root / relative

    def manifest_checksum(self) -> str:
        """Identifies the tables a model was trained on (stored next to its checkpoints)."""
        return file_checksum(self.root / ITEMS_FILE) + file_checksum(self.root / STEMS_FILE)
