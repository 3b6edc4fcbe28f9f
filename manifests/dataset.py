"""Reading a dataset: schema checks, path rules, typed records, and the `--where` selection.

`Dataset.open(root)` is how `train` and every `msaug` command that reads a dataset get at it.
It reads schema 2, and schema 1 through an upgrade in memory (`manifests.schema_v1`);
`schema_version` says which one is on disk. Every path and name in the tables is checked
against `manifests.paths` before any tool can use it. The tables are plain Parquet, so pandas,
polars and duckdb open them directly as well.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from manifests import schema_v1
from manifests.checksum import file_checksum
from manifests.errors import ManifestError
from manifests.paths import AUDIO_EXTENSIONS, check_name, check_relative, confined
from manifests.query import check_query, unknown_values
from manifests.records import ROLES, ItemRecord, StemRecord
from manifests.schema import DATASET_JSON, SCHEMA_VERSION, derived_fields
from manifests.tables import listed_table_files, read_tables

_COLUMN_WORD = re.compile(r"[a-z][a-z0-9_]*")


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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{json_path} is corrupt ({exc}); re-render or restore it") from exc
    version = header.get("schema_version") if isinstance(header, dict) else None
    if not isinstance(version, int) or version < 1:
        raise ManifestError(f"{json_path} has no valid schema_version; re-render the dataset")
    if version > SCHEMA_VERSION:
        raise ManifestError(
            f"{root} uses manifest schema {version}, newer than this msaug reads "
            f"({SCHEMA_VERSION}); upgrade msaug"
        )
    return header


def _check_header(header: dict[str, Any]) -> None:
    """The header fields that decide table columns and file names."""
    stems = header.get("stems")
    if not isinstance(stems, list) or not stems or len(set(map(str, stems))) != len(stems):
        raise ManifestError(f"{DATASET_JSON} stems must be a list of distinct names, got {stems!r}")
    for stem in stems:
        check_name(stem, f"{DATASET_JSON} stems")
    declared = header.get("effect_columns")
    if not isinstance(declared, dict):
        raise ManifestError(f"{DATASET_JSON} effect_columns must map effect kinds to parameters")
    for kind, params in declared.items():
        words = [kind, *params] if isinstance(params, list) else [None]
        if not all(isinstance(w, str) and _COLUMN_WORD.fullmatch(w) for w in words):
            raise ManifestError(
                f"{DATASET_JSON} effect_columns.{kind} = {params!r}: kinds and parameters are "
                "lower-case words (letters, digits, _)"
            )


def _check_rows(items: pd.DataFrame, stems: pd.DataFrame) -> None:
    for row in items[["item_id", "subset", "role", "mixture_path"]].itertuples(index=False):
        where = f"items row {row.item_id!r}"
        check_name(row.item_id, f"items row item_id {row.item_id!r}")
        check_name(row.subset, where + " subset")
        if row.role not in ROLES:
            raise ManifestError(f"{where}: role {row.role!r} is not one of {list(ROLES)}")
        check_relative(row.mixture_path, where + " mixture_path", AUDIO_EXTENSIONS)
    for row in stems[["item_id", "stem", "path"]].itertuples(index=False):
        check_relative(
            row.path, f"stems row ({row.item_id!r}, {row.stem!r}) path", AUDIO_EXTENSIONS
        )


@dataclass
class Dataset:
    """A dataset, or a selection of one (`select`): same root, fewer rows.

    `header` and the frames are in the current schema whatever is on disk; `v1_tables` keeps a
    schema-1 dataset's rows as stored, which its packed json members were made from.
    """

    root: Path
    header: dict[str, Any]
    items: pd.DataFrame
    stems: pd.DataFrame
    schema_version: int = SCHEMA_VERSION
    where: str | None = None
    v1_tables: tuple[pd.DataFrame, pd.DataFrame] | None = field(default=None, repr=False)
    _by_id: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, root: str | Path) -> Dataset:
        root = Path(root)
        header = read_header(root)
        version = header["schema_version"]
        v1_tables = None
        if version == schema_v1.VERSION:
            v1_tables = schema_v1.read_v1(root)
            header, items, stems = schema_v1.upgrade(header, *v1_tables)
        else:
            _check_header(header)
            items, stems = read_tables(root, header)
        _check_rows(items, stems)
        return cls(root, header, items, stems, version, None, v1_tables)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def stem_names(self) -> tuple[str, ...]:
        return tuple(self.header["stems"])

    @property
    def derived_columns(self) -> list[str]:
        """The typed effect columns of the stems table (computed from `effects`)."""
        return [f.name for f in derived_fields(self.header["effect_columns"])]

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
        `mode == 'incoherent' and not vocals_pitch_shift_applied`.
        """
        per_stem = []
        for stem in self.stem_names:
            part = self.stems[self.stems["stem"] == stem].drop(columns="stem")
            per_stem.append(part.set_index("item_id").add_prefix(f"{stem}_"))
        return self.items.join(pd.concat(per_stem, axis=1), on="item_id")

    def select(self, where: str | None) -> Dataset:
        """The items for which the pandas query `where` is true; None or '' selects all. The
        validation songs (`role == 'valid'`) are always kept: an ablation changes what a model
        trains on, never what it is validated on.

        `where` may come from anyone (a shared recipe, a script): `manifests.query` checks it
        against a whitelist before pandas evaluates it."""
        if not where:
            return self
        wide = self.wide
        numeric = [c for c in wide.columns if pd.api.types.is_numeric_dtype(wide[c].dtype)]
        check_query(where, wide.columns, self.stem_names, numeric)
        try:  # empty scopes: nothing but the columns is reachable, whatever check_query missed
            mask = self.wide.eval(where, local_dict={}, global_dict={})
        except Exception as exc:  # pandas raises many types for a bad expression
            raise ManifestError(
                f"--where {where!r} is not a valid query over this dataset ({exc}); "
                "see `msaug select --help` for the column names"
            ) from exc
        if not (isinstance(mask, pd.Series) and mask.dtype == bool):
            raise ManifestError(f"--where {where!r} must be a true/false condition per item")
        keep = mask.to_numpy() & (self.items["role"] != "valid").to_numpy()
        ids = set(self.items.loc[keep, "item_id"])
        if not ids:
            hint = unknown_values(where, wide)
            raise ManifestError(
                f"--where {where!r} selects no items of {len(self)} in {self.root}"
                + (f": {hint}" if hint else "")
            )
        ids |= set(self.items.loc[self.items["role"] == "valid", "item_id"])  # always carried
        combined = where if self.where is None else f"({self.where}) and ({where})"
        return self.rows_of(ids, where=combined)

    def rows_of(
        self, ids: Collection[str], header: dict[str, Any] | None = None, where: str | None = None
    ) -> Dataset:
        """The same root with only the rows of the items `ids` (and `header`, if given)."""
        items = self.items[self.items["item_id"].isin(ids)].reset_index(drop=True)
        stems = self.stems[self.stems["item_id"].isin(ids)].reset_index(drop=True)
        header = self.header if header is None else header
        return Dataset(self.root, header, items, stems, self.schema_version, where)

    def item(self, item_id: str) -> tuple[ItemRecord, dict[str, StemRecord]]:
        if not self._by_id:
            self._by_id = {iid: i for i, iid in enumerate(self.items["item_id"])}
        if item_id not in self._by_id:
            raise ManifestError(f"item {item_id!r} is not in {self.root}")
        record = ItemRecord.from_dict(self.items.iloc[self._by_id[item_id]].to_dict())
        rows = self.stems[self.stems["item_id"] == item_id]
        derived = self.derived_columns
        return record, {
            row["stem"]: StemRecord.from_dict(row, derived) for row in rows.to_dict("records")
        }

    def stem_records(self) -> list[StemRecord]:
        derived = self.derived_columns
        return [StemRecord.from_dict(row, derived) for row in self.stems.to_dict("records")]

    def path(self, relative: str) -> Path:
        """Where a listed file is; never outside the dataset (`paths.confined`)."""
        return confined(self.root, relative)

    def table_files(self) -> list[str]:
        """The table files on disk, relative to the root, for the schema the folder holds."""
        if self.schema_version == schema_v1.VERSION:
            return [schema_v1.ITEMS_FILE, schema_v1.STEMS_FILE]
        return [e["path"] for t in ("items", "stems") for e in listed_table_files(self.header, t)]

    def manifest_checksum(self) -> str:
        """Identifies the tables a model was trained on (stored next to its checkpoints)."""
        return "".join(file_checksum(self.path(path)) for path in self.table_files())
