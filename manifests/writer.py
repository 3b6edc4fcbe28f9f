"""Crash-safe, resumable writing of a dataset's manifest.

Rows arrive in batches from render workers. Each batch becomes a pair of Parquet part files
(`manifest/parts/stems/<key>.parquet`, then `manifest/parts/items/<key>.parquet`; the items
part marks the batch done), written atomically. `finalize` folds the parts into the two tables
(`manifests.tables.write_tables`). A rerun opens the same folder, learns which items exist and
renders only the rest; the folded tables are sorted by item index, so they are the same
whatever the batching, the worker count or the number of interruptions. The writer holds the
folder's lock (`manifests.lock`) from `open` to `finalize` or `close`, so one folder has one
writer; its workers pass `lock_token` to `worker_hold`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.checksum import CHECKSUM_ALGO
from manifests.errors import ManifestError
from manifests.files import is_temp
from manifests.lock import LEASE_FILE, LOCK_FILE, WriterLock
from manifests.paths import check_real_folder
from manifests.records import ItemRecord, StemRecord
from manifests.schema import (
    DATASET_JSON,
    ITEMS_SCHEMA,
    MANIFEST_DIR,
    PARTS_DIR,
    SCHEMA_VERSION,
    TABLES,
    EffectColumns,
    stems_schema,
    table_dir,
    table_file,
)
from manifests.tables import (
    arrow_table,
    frame_from_arrow,
    item_frame,
    stem_frame,
    write_json,
    write_table,
    write_tables,
)


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class DatasetWriter:
    """Writes one dataset folder; reopening the same folder with the same identity resumes.

    `identity` is everything that decides the bytes of item i (settings, effects config,
    source listing, draw scheme, library versions); `provenance` is what does not (command,
    source root, msaug's release). A rerun whose identity, stems or effect columns differ is
    refused instead of mixing two datasets.
    """

    def __init__(
        self,
        root: str | Path,
        identity: dict[str, Any],
        provenance: dict[str, Any],
        stems: Sequence[str],
        effect_columns: EffectColumns,
    ):
        self.root = Path(root)
        self.fixed = json.loads(
            json.dumps(
                {
                    "identity": identity,
                    "stems": list(stems),
                    "effect_columns": {k: list(v) for k, v in sorted(effect_columns.items())},
                }
            )
        )
        self.provenance = provenance
        self.stems_schema = stems_schema(self.fixed["effect_columns"])
        self.lock: WriterLock | None = None

    @classmethod
    def open(
        cls,
        root: str | Path,
        identity: dict[str, Any],
        provenance: dict[str, Any],
        stems: Sequence[str],
        effect_columns: EffectColumns,
        lock: WriterLock | None = None,
    ) -> DatasetWriter:
        """Lock `root` (or take over `lock`, taken earlier on it) and start or resume it."""
        writer = cls(root, identity, provenance, stems, effect_columns)
        command = str(provenance.get("command") or "")
        writer.lock = lock or WriterLock.acquire(writer.root, command)
        try:
            writer._start()
        except BaseException:
            writer.close()
            raise
        return writer

    @property
    def lock_token(self) -> str:
        assert self.lock is not None, "the writer is closed"
        return self.lock.token

    def close(self) -> None:
        """Release the folder (also done by `finalize`); unfolded parts stay for a resume."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def fingerprint(self) -> str:
        """A digest of everything that decides item bytes (identity, stems, effect columns):
        the proof that a sidecar (`manifests.sidecar`) was written by a run of this render."""
        text = json.dumps(self.fixed, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    @property
    def stem_names(self) -> list[str]:
        return self.fixed["stems"]

    @property
    def effect_columns(self) -> dict[str, list[str]]:
        return self.fixed["effect_columns"]

    def _start(self) -> None:
        json_path = self.root / DATASET_JSON
        if json_path.is_symlink():
            raise ManifestError(
                f"{json_path} is a symbolic link; a dataset's files lie inside its folder and "
                "msaug never reads or writes through a link: replace it with the file"
            )
        for folder, what in (
            (MANIFEST_DIR, "the manifest"),
            (PARTS_DIR, "unfolded parts"),
            *((table_dir(t), f"the {t} table") for t in TABLES),
            *((f"{PARTS_DIR}/{t}", f"unfolded {t} parts") for t in TABLES),
        ):  # read, written and emptied by this writer: real folders only
            check_real_folder(self.root / folder, what)
        if json_path.exists():
            try:
                existing = json.loads(json_path.read_text())
            except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
                existing = exc
            if not isinstance(existing, dict):
                raise ManifestError(
                    f"{json_path} is not readable dataset settings ({existing}); restore it, or "
                    "render into a new --out folder"
                )
            version = existing.get("schema_version")
            if version != SCHEMA_VERSION:
                raise ManifestError(
                    f"{self.root} holds a manifest schema {version} dataset; a render extends "
                    f"only schema {SCHEMA_VERSION}: use a new --out folder"
                )
            old = {key: existing.get(key) for key in self.fixed}
            if old != self.fixed:
                diff = _first_difference(old, self.fixed)
                raise ManifestError(
                    f"{self.root} holds a dataset rendered with other settings ({diff}); "
                    "use a new --out folder or the original settings"
                )
            self.remove_temp_files()
            return
        if any(
            p.name not in (LOCK_FILE, LEASE_FILE) and not is_temp(p) for p in self.root.iterdir()
        ):
            raise ManifestError(
                f"{self.root} is not empty and holds no {DATASET_JSON}; "
                "choose an empty or new --out folder"
            )
        write_json(json_path, self._header(n_items=0, provenance={"created": now()}))

    def _header(self, n_items: int, provenance: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "checksum_algo": CHECKSUM_ALGO,
            **self.fixed,
            "n_items": n_items,
            "digest": None,
            "tables": None,
            "provenance": {
                "msaug_version": package_version("msaug"),
                **self.provenance,
                **provenance,
            },
        }

    def remove_temp_files(self) -> None:
        """Temp files of writes that never finished (a crash, a killed worker); only safe
        while this writer holds the folder's lock, which it does."""
        for folder, _, names in os.walk(self.root):
            for name in names:
                path = Path(folder) / name
                if is_temp(path):
                    path.unlink(missing_ok=True)

    def _parts(self, table: str) -> Path:
        return self.root / PARTS_DIR / table

    def done_item_ids(self) -> set[str]:
        """Item ids already in the folded tables or in finished parts."""
        return set(self.done_roles())

    def done_roles(self) -> dict[str, str]:
        """Item id -> role (`train`, `valid`) of every item in the tables or finished parts."""
        done: dict[str, str] = {}
        for path in self._item_files():
            table = pq.read_table(path, columns=["item_id", "role"])
            done.update(zip(*(table.column(i).to_pylist() for i in (0, 1)), strict=True))
        return done

    def _item_files(self) -> list[Path]:
        folded = self.root / table_file("items")
        return ([folded] if folded.exists() else []) + sorted(
            self._parts("items").glob("*.parquet")
        )

    def part_tables(
        self, items: Sequence[ItemRecord], stems: Sequence[StemRecord]
    ) -> tuple[pa.Table, pa.Table]:
        """The (stems, items) tables `write_part` writes for these rows, written nowhere: rows
        no part can hold (an undeclared effect, a number Arrow's types do not hold) raise here
        (ManifestError, or pyarrow's and pandas' own errors), before anything is written."""
        return (
            arrow_table(stem_frame(stems, self.effect_columns), self.stems_schema),
            arrow_table(item_frame(items), ITEMS_SCHEMA),
        )

    def write_part(
        self, key: str, items: Sequence[ItemRecord], stems: Sequence[StemRecord]
    ) -> None:
        """Record one finished batch; its audio files must already be in place."""
        stems_table, items_table = self.part_tables(items, stems)
        write_table(self._parts("stems") / f"{key}.parquet", stems_table)
        write_table(self._parts("items") / f"{key}.parquet", items_table)

    def folded_tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The tables `finalize` writes: the folded tables and every finished part, in the
        canonical order. Hand them to `finalize` to write what was counted from them."""
        item_parts = sorted(self._parts("items").glob("*.parquet"))
        stem_parts = [self._parts("stems") / p.name for p in item_parts]
        return sorted_tables(
            _fold([self.root / table_file("items"), *item_parts], ["item_id"], ITEMS_SCHEMA),
            _fold(
                [self.root / table_file("stems"), *stem_parts],
                ["item_id", "stem"],
                self.stems_schema,
            ),
            self.stem_names,
        )

    def finalize(
        self, folded: tuple[pd.DataFrame, pd.DataFrame] | None = None, **summary: Any
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Fold parts into the tables (`folded`: what `folded_tables` returned, if the caller
        already read them), update dataset.json, and delete the parts."""
        item_parts = sorted(self._parts("items").glob("*.parquet"))
        stem_parts = [self._parts("stems") / p.name for p in item_parts]
        items, stems = folded if folded is not None else self.folded_tables()
        created = json.loads((self.root / DATASET_JSON).read_text())["provenance"]["created"]
        header = self._header(len(items), {"created": created, **summary})
        write_tables(self.root, header, items, stems)
        orphans = [p for p in self._parts("stems").glob("*.parquet") if p not in stem_parts]
        for path in (*item_parts, *stem_parts, *orphans):  # an orphan's batch is rendered again
            path.unlink(missing_ok=True)
        for folder in (self._parts("items"), self._parts("stems"), self.root / PARTS_DIR):
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        if self.lock is not None:
            self.lock.release(remove=True)  # a finished dataset holds no lock file
            self.lock = None
        return items, stems


def _fold(paths: Iterable[Path], unique: list[str], schema: pa.Schema) -> pd.DataFrame:
    """Concatenate tables; a row written twice (a crash between fold and cleanup) counts once."""
    frames = [frame_from_arrow(pq.read_table(p)) for p in paths if p.exists()]
    if not frames:
        return frame_from_arrow(schema.empty_table())
    return pd.concat(frames, ignore_index=True).drop_duplicates(subset=unique, keep="last")


def sorted_tables(
    items: pd.DataFrame, stems: pd.DataFrame, stem_names: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Items by index, stems in item order then `stem_names` order: the canonical row order, so
    tables never depend on batching, worker count or sharding."""
    items = items.sort_values("item_index", kind="stable").reset_index(drop=True)
    if stems.empty:
        return items, stems
    rank = {item_id: i for i, item_id in enumerate(items["item_id"])}
    stem_rank = {name: i for i, name in enumerate(stem_names)}
    key = stems["item_id"].map(rank) * len(stem_names) + stems["stem"].map(stem_rank)
    return items, stems.iloc[key.argsort(kind="stable")].reset_index(drop=True)


def _first_difference(old: Any, new: Any, path: str = "") -> str:
    """The first field that differs, digests last: a changed source names its file."""
    new = json.loads(json.dumps(new))
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=lambda k: (k == "digest", k)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{path}.{key}".lstrip("."))
    return f"{path or 'settings'}: was {old!r}, now {new!r}"
