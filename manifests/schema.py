"""Schema version, on-disk layout and the Arrow schemas of the two tables.

The Arrow schemas are derived from the record dataclasses, so a column is declared once.
"""

from __future__ import annotations

import types
import typing
from pathlib import PurePosixPath

import pyarrow as pa

from manifests.records import ItemRecord, StemRecord, _Record

SCHEMA_VERSION = 1
"""Bumped on any change to columns or layout; readers refuse newer versions."""

STEM_NAMES: tuple[str, ...] = ("vocals", "drums", "bass", "other")
"""The four MUSDB18 sources, in the order used everywhere (tables, models, outputs)."""

MIXTURE = "mixture"
DATASET_JSON = "dataset.json"
MANIFEST_DIR = "manifest"
PARTS_DIR = "manifest/parts"
ITEMS_FILE = "manifest/items.parquet"
STEMS_FILE = "manifest/stems.parquet"
METADATA_KEY = b"msaug.schema_version"

_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _arrow_type(hint: typing.Any) -> tuple[pa.DataType, bool]:
    """(type, nullable) for a record field annotation such as `float | None`."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (inner,) = [a for a in args if a is not type(None)]
        return _ARROW_TYPES[inner], True
    return _ARROW_TYPES[hint], False


def arrow_schema(record: type[_Record]) -> pa.Schema:
    fields = [pa.field(name, *_arrow_type(hint)) for name, hint in record.field_types().items()]
    return pa.schema(fields, metadata={METADATA_KEY: str(SCHEMA_VERSION).encode()})


ITEMS_SCHEMA = arrow_schema(ItemRecord)
STEMS_SCHEMA = arrow_schema(StemRecord)


def item_dir(split: str, item_id: str) -> PurePosixPath:
    """Relative folder of an item: `<split>/<item_id>`, the MUSDB18-HQ track layout."""
    return PurePosixPath(split) / item_id


def audio_path(split: str, item_id: str, name: str, extension: str) -> str:
    """Relative path of one audio file of an item (`name` is a stem or `mixture`)."""
    return str(item_dir(split, item_id) / f"{name}.{extension}")
