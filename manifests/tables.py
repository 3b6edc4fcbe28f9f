"""The manifest tables on disk: one folder per table, the dataset digest, dataset.json last.

`write_tables` is the one way a finished manifest is written (render, select, merge, migrate):
each table's rows go to `manifest/<table>/part-000000.parquet`, dataset.json lists those files
with their sizes and checksums and records the digest, and is written last, so a folder is only
a dataset once its tables are in place.

The digest identifies a dataset by content: the byte-determining header fields (schema
version, stems, effect columns, identity) and every logical row of both tables, which include
every audio file's checksum. It leaves out Parquet bytes, provenance (times, commands, paths),
so a byte-identical rebuild elsewhere has the same digest. It is sha256, not the files'
xxh3: it is what a publisher posts for others to check against, like a release's sha256.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.checksum import file_checksum
from manifests.errors import ManifestError
from manifests.files import atomic_path
from manifests.paths import check_relative, confined
from manifests.records import ItemRecord, StemRecord, effect_columns, normalise_effects
from manifests.schema import (
    DATASET_JSON,
    ITEMS_SCHEMA,
    METADATA_KEY,
    SCHEMA_VERSION,
    EffectColumns,
    derived_fields,
    stems_schema,
    table_dir,
    table_file,
)

DIGEST_PREFIX = "sha256:"
DIGEST_KEYS = ("schema_version", "stems", "effect_columns", "identity")
"""Header fields the digest covers; everything else in dataset.json is provenance."""


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def arrow_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    if frame.empty:  # pandas cannot type an empty list column
        return schema.empty_table()
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def write_table(path: Path, table: pa.Table) -> None:
    with atomic_path(path) as temp:
        pq.write_table(table, temp)


def frame_from_arrow(table: pa.Table) -> pd.DataFrame:
    """A table as the frames every tool works on: the `effects` column as lists of
    `{kind, params: {name: value}}` dicts (Arrow gives maps as lists of pairs)."""
    frame = table.to_pandas()
    if "effects" in frame.columns:
        frame["effects"] = [normalise_effects(chain) for chain in frame["effects"]]
    return frame


def item_frame(records: Sequence[ItemRecord]) -> pd.DataFrame:
    return pd.DataFrame([r.to_dict() for r in records], columns=ITEMS_SCHEMA.names)


def stem_frame(records: Sequence[StemRecord], declared: EffectColumns) -> pd.DataFrame:
    rows = [{**r.to_dict(), **effect_columns(r.effects, declared)} for r in records]
    return pd.DataFrame(rows, columns=stems_schema(declared).names)


def with_effect_columns(stems: pd.DataFrame, declared: EffectColumns) -> pd.DataFrame:
    """`stems` with its typed effect columns recomputed from `effects` for `declared`
    (a merge of datasets that declare different effects, a migration)."""
    base = [name for name in StemRecord.field_types()]
    derived = pd.DataFrame(
        [effect_columns(chain, declared) for chain in stems["effects"]],
        columns=[f.name for f in derived_fields(declared)],
        index=stems.index,
    )
    return pd.concat([stems[base], derived], axis=1)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _plain(value.item())
    return value


def plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A pandas row as plain Python values: NaN as None, numpy scalars as Python scalars."""
    return {key: _plain(value) for key, value in row.items()}


def canonical_rows(frame: pd.DataFrame) -> Iterator[bytes]:
    """Each row as compact JSON with sorted keys: nulls as null, floats as their shortest
    round-tripping repr. The same rows give the same bytes whatever wrote the Parquet file."""
    for row in frame.to_dict("records"):
        clean = plain_row(row)
        yield json.dumps(clean, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def content_digest(header: Mapping[str, Any], items: pd.DataFrame, stems: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    fixed = {key: header.get(key) for key in DIGEST_KEYS}
    digest.update(json.dumps(fixed, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    for name, frame in (("items", items), ("stems", stems)):
        digest.update(f"table {name} {len(frame)}\n".encode())
        for line in canonical_rows(frame):
            digest.update(line + b"\n")
    return DIGEST_PREFIX + digest.hexdigest()


def write_tables(
    folder: Path, header: dict[str, Any], items: pd.DataFrame, stems: pd.DataFrame
) -> dict[str, Any]:
    """Write both tables and then dataset.json (with `tables`, `n_items` and `digest` filled
    in) into `folder`; return the header written."""
    declared = header["effect_columns"]
    written = {}
    tables = {}
    for name, frame, schema in (
        ("stems", stems, stems_schema(declared)),
        ("items", items, ITEMS_SCHEMA),
    ):
        table = arrow_table(frame, schema)
        relative = table_file(name)
        with atomic_path(folder / relative) as temp:
            pq.write_table(table, temp)
            listed = {
                "path": relative,
                "bytes": temp.stat().st_size,
                "checksum": file_checksum(temp),
            }
        tables[name] = [listed]
        written[name] = frame_from_arrow(table)
    header = {**header, "schema_version": SCHEMA_VERSION, "n_items": len(items), "tables": tables}
    header["digest"] = content_digest(header, written["items"], written["stems"])
    write_json(folder / DATASET_JSON, header)
    return header


def listed_table_files(header: Mapping[str, Any], table: str) -> list[dict[str, Any]]:
    """The part files dataset.json lists for `table`, each path checked to lie in its folder."""
    listed = (header.get("tables") or {}).get(table)
    where = f"{DATASET_JSON} tables.{table}"
    if not isinstance(listed, list) or not listed:
        raise ManifestError(f"{where} lists no files; re-render or restore dataset.json")
    for entry in listed:
        if not isinstance(entry, dict):
            raise ManifestError(f"{where} holds {entry!r}, not a file entry")
        path = check_relative(entry.get("path"), where, {".parquet"})
        if path.rsplit("/", 1)[0] != table_dir(table):
            raise ManifestError(f"{where}: {path!r} is not in {table_dir(table)}/")
    return listed


def read_parquet(path: Path, required: Iterable[str]) -> pd.DataFrame:
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
    missing = set(required) - set(table.schema.names)
    if missing:
        raise ManifestError(
            f"{path} lacks columns {sorted(missing)}; it does not match schema {version}"
        )
    return frame_from_arrow(table)


def read_tables(root: Path, header: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables of a schema-2 dataset, from the files its dataset.json lists."""
    schemas = {"items": ITEMS_SCHEMA, "stems": stems_schema(header["effect_columns"])}
    frames = {}
    for name, schema in schemas.items():
        parts = [
            read_parquet(confined(root, e["path"]), schema.names)
            for e in listed_table_files(header, name)
        ]
        frames[name] = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        frames[name] = frames[name][schema.names]
    return frames["items"], frames["stems"]
