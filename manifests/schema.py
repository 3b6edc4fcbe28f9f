"""Schema version, on-disk layout and the Arrow schemas of the two tables.

Each table is a folder of Parquet part files (`manifest/items/`, `manifest/stems/`), so
`manifest/items/*.parquet` is a glob that duckdb, polars and HF datasets read as one table. The
Arrow schemas are derived from the record dataclasses, so a column is declared once; the typed
effect columns of the stems table come from the declaration the dataset carries
(`dataset.json` `effect_columns`, written by the render stage's effect registry).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

import pyarrow as pa

from manifests.records import ItemRecord, StemRecord, _Record, applied_column, param_column

SCHEMA_VERSION = 2
"""Bumped on any change to columns or layout; readers refuse newer versions."""

STEM_NAMES: tuple[str, ...] = ("vocals", "drums", "bass", "other")
"""The four MUSDB18 sources: what msaug's render writes, and the implied stems of schema 1.
A dataset's own stem set is data (`dataset.json` `stems`, `Dataset.stem_names`)."""

MIXTURE = "mixture"
DATASET_JSON = "dataset.json"
MANIFEST_DIR = "manifest"
TABLES = ("items", "stems")
PARTS_DIR = "manifest/parts"
"""Unfolded render batches, one folder per table (`manifest/parts/items/<key>.parquet`)."""
TABLE_PART = "part-000000.parquet"
METADATA_KEY = b"msaug.schema_version"

EffectColumns = Mapping[str, Sequence[str]]
"""Effect kind -> parameters that get typed columns: `<kind>_applied` and `<kind>_<param>`."""

EFFECTS_TYPE = pa.list_(
    pa.struct([("kind", pa.string()), ("params", pa.map_(pa.string(), pa.float64()))])
)
"""The `effects` column: the ordered chain, one struct per effect; the same shape whatever
effects a config adds."""

_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def table_dir(table: str) -> str:
    return f"{MANIFEST_DIR}/{table}"


def table_file(table: str) -> str:
    """The one part file a finished table is folded into."""
    return f"{table_dir(table)}/{TABLE_PART}"


def _arrow_type(hint: typing.Any) -> tuple[pa.DataType, bool]:
    """(type, nullable) for a record field annotation such as `float | None`."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (inner,) = [a for a in args if a is not type(None)]
        return _ARROW_TYPES[inner], True
    if typing.get_origin(hint) is list:
        return EFFECTS_TYPE, False
    return _ARROW_TYPES[hint], False


def derived_fields(effect_columns: EffectColumns) -> list[pa.Field]:
    """The typed effect columns, in declaration order: a flag, then each parameter."""
    fields = []
    for kind, params in effect_columns.items():
        fields.append(pa.field(applied_column(kind), pa.bool_(), False))
        fields += [pa.field(param_column(kind, p), pa.float64(), True) for p in params]
    return fields


def arrow_schema(record: type[_Record], effect_columns: EffectColumns | None = None) -> pa.Schema:
    fields = [pa.field(name, *_arrow_type(hint)) for name, hint in record.field_types().items()]
    if effect_columns is not None:
        fields += derived_fields(effect_columns)
    return pa.schema(fields, metadata={METADATA_KEY: str(SCHEMA_VERSION).encode()})


ITEMS_SCHEMA = arrow_schema(ItemRecord)


def stems_schema(effect_columns: EffectColumns) -> pa.Schema:
    return arrow_schema(StemRecord, effect_columns)


def item_dir(subset: str, item_id: str) -> PurePosixPath:
    """Relative folder of an item: `<subset>/<item_id>`, the MUSDB18-HQ track layout."""
    return PurePosixPath(subset) / item_id


def audio_path(subset: str, item_id: str, name: str, extension: str) -> str:
    """Relative path of one audio file of an item (`name` is a stem or `mixture`)."""
    return str(item_dir(subset, item_id) / f"{name}.{extension}")
