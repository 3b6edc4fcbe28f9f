"""Crash-safe, resumable writing of a dataset's manifest.

Rows arrive in batches from render workers. Each batch becomes a pair of Parquet part files
(`manifest/parts/stems-<key>.parquet`, then `items-<key>.parquet`; the items part marks the
batch done), written atomically. `finalize` folds the parts into the two tables. A rerun opens
the same folder, learns which items exist and renders only the rest; the folded tables are
sorted by item index, so they are the same whatever the batching, the worker count or the
number of interruptions.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.checksum import CHECKSUM_ALGO
from manifests.errors import ManifestError
from manifests.files import atomic_path, is_temp
from manifests.records import ItemRecord, StemRecord
from manifests.schema import (
    DATASET_JSON,
    ITEMS_FILE,
    ITEMS_SCHEMA,
    PARTS_DIR,
    SCHEMA_VERSION,
    STEM_NAMES,
    STEMS_FILE,
    STEMS_SCHEMA,
)


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_table(path: Path, frame: pd.DataFrame, schema: pa.Schema) -> None:
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    with atomic_path(path) as temp:
        pq.write_table(table, temp)


def records_frame(records: Sequence[ItemRecord | StemRecord], schema: pa.Schema) -> pd.DataFrame:
    return pd.DataFrame([r.to_dict() for r in records], columns=schema.names)


class DatasetWriter:
    """Writes one dataset folder; reopening the same folder with the same identity resumes.

    `identity` is everything that decides the bytes of item i (sources, effects config, seed,
    format). A rerun whose identity differs is refused instead of mixing two datasets.
    """

    def __init__(self, root: str | Path, identity: dict[str, Any], meta: dict[str, Any]):
        self.root = Path(root)
        self.identity = identity
        self.meta = meta

    @classmethod
    def open(
        cls, root: str | Path, identity: dict[str, Any], meta: dict[str, Any]
    ) -> DatasetWriter:
        writer = cls(root, identity, meta)
        writer._start()
        return writer

    def _start(self) -> None:
        json_path = self.root / DATASET_JSON
        if json_path.exists():
            existing = json.loads(json_path.read_text())
            if existing.get("identity") != json.loads(json.dumps(self.identity)):
                diff = _first_difference(existing.get("identity", {}), self.identity)
                raise ManifestError(
                    f"{self.root} holds a dataset rendered with other settings ({diff}); "
                    "use a new --out folder or the original settings"
                )
            self._remove_temp_files()
            return
        if self.root.exists() and any(self.root.iterdir()):
            raise ManifestError(
                f"{self.root} is not empty and holds no {DATASET_JSON}; "
                "choose an empty or new --out folder"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(json_path, self._header(n_items=0))

    def _header(self, n_items: int, **extra: Any) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "checksum_algo": CHECKSUM_ALGO,
            "msaug_version": package_version("msaug"),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "identity": self.identity,
            "n_items": n_items,
            **self.meta,
            **extra,
        }

    def _remove_temp_files(self) -> None:
        for folder, _, names in os.walk(self.root):
            for name in names:
                path = Path(folder) / name
                if is_temp(path):
                    path.unlink(missing_ok=True)

    def done_item_ids(self) -> set[str]:
        """Item ids already in the folded tables or in finished parts."""
        done: set[str] = set()
        for path in self._item_files():
            done.update(pq.read_table(path, columns=["item_id"]).column(0).to_pylist())
        return done

    def _item_files(self) -> list[Path]:
        parts = sorted((self.root / PARTS_DIR).glob("items-*.parquet"))
        folded = self.root / ITEMS_FILE
        return ([folded] if folded.exists() else []) + parts

    def write_part(
        self, key: str, items: Sequence[ItemRecord], stems: Sequence[StemRecord]
    ) -> None:
        """Record one finished batch; its audio files must already be in place."""
        parts = self.root / PARTS_DIR
        write_table(
            parts / f"stems-{key}.parquet", records_frame(stems, STEMS_SCHEMA), STEMS_SCHEMA
        )
        write_table(
            parts / f"items-{key}.parquet", records_frame(items, ITEMS_SCHEMA), ITEMS_SCHEMA
        )

    def finalize(self, **summary: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Fold parts into the tables, update dataset.json, and delete the parts."""
        parts = self.root / PARTS_DIR
        item_parts = sorted(parts.glob("items-*.parquet"))
        stem_parts = [parts / p.name.replace("items-", "stems-", 1) for p in item_parts]
        items, stems = sorted_tables(
            _fold([self.root / ITEMS_FILE, *item_parts], ["item_id"], ITEMS_SCHEMA),
            _fold([self.root / STEMS_FILE, *stem_parts], ["item_id", "stem"], STEMS_SCHEMA),
        )
        write_table(self.root / STEMS_FILE, stems, STEMS_SCHEMA)
        write_table(self.root / ITEMS_FILE, items, ITEMS_SCHEMA)
        header = json.loads((self.root / DATASET_JSON).read_text())
        header.update(self._header(n_items=len(items), **summary), created=header["created"])
        write_json(self.root / DATASET_JSON, header)
        for path in (*item_parts, *stem_parts):
            path.unlink(missing_ok=True)
        if parts.exists() and not any(parts.iterdir()):
            parts.rmdir()
        return items, stems


def _fold(paths: Iterable[Path], unique: list[str], schema: pa.Schema) -> pd.DataFrame:
    """Concatenate tables; a row written twice (a crash between fold and cleanup) counts once."""
    frames = [pq.read_table(p).to_pandas() for p in paths if p.exists()]
    if not frames:
        return schema.empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True).drop_duplicates(subset=unique, keep="last")


def sorted_tables(items: pd.DataFrame, stems: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Items by index, stems in item order then STEM_NAMES order: the canonical row order, so
    tables never depend on batching, worker count or sharding."""
    items = items.sort_values("item_index", kind="stable").reset_index(drop=True)
    if stems.empty:
        return items, stems
    rank = {item_id: i for i, item_id in enumerate(items["item_id"])}
    stem_rank = {name: i for i, name in enumerate(STEM_NAMES)}
    key = stems["item_id"].map(rank) * len(STEM_NAMES) + stems["stem"].map(stem_rank)
    return items, stems.iloc[key.argsort(kind="stable")].reset_index(drop=True)


def _first_difference(old: Any, new: Any, path: str = "") -> str:
    new = json.loads(json.dumps(new))
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{path}.{key}".lstrip("."))
    return f"{path or 'settings'}: was {old!r}, now {new!r}"
