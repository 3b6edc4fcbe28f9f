"""The manifest contract: records -> Parquet -> records, other readers, schema versions."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from factory import make_dataset

from manifests import Dataset, DatasetWriter, ItemRecord, ManifestError, StemRecord
from manifests.records import effect_columns
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


def _records(n: int) -> tuple[list[ItemRecord], list[StemRecord]]:
    """Rows exercising every column type: nulls, bools, negative floats, big ints, unicode."""
    items, stems = [], []
    for index in range(n):
        item_id = f"{index:07d}"
        items.append(
            ItemRecord(
                item_id=item_id,
                split="train" if index % 2 else "valid",
                mode=("coherent", "semi-coherent", "incoherent")[index % 3],
                seconds=2.5,
                sample_rate=44100,
                channels=2,
                num_frames=110250,
                run_seed=2**40 + index,
                item_index=index,
                item_seed=2**62 + index,
                mixture_path=f"train/{item_id}/mixture.wav",
                checksum=f"{index:032x}",
                bytes=441044,
                common_scale=0.5 + index / 10,
                mixture_rms_db=-20.25 - index,
                mixture_peak=0.99,
                attempts=1 + index,
                origin="" if index else "part/Ünïcode",
            )
        )
        for k, stem in enumerate(STEM_NAMES):
            chain = [
                {"kind": "pitch_shift", "semitones": -1.75 + k},
                {"kind": "reverb", "room_size": 0.3, "damping": 0.25, "wet": 0.3},
            ][: (index + k) % 3]
            stems.append(
                StemRecord(
                    item_id=item_id,
                    stem=stem,
                    source_track=f"Artist {k} - Sóng {index}",
                    source_subset="train",
                    offset_seconds=12.345 + index,
                    duration_seconds=2.5,
                    gain_db=-3.0 + k,
                    chain=json.dumps(chain),
                    path=f"train/{item_id}/{stem}.wav",
                    checksum=f"{index * 10 + k:032x}",
                    bytes=441044,
                    rms_db=-30.5 + k,
                    peak=0.25 * (k + 1),
                    activity=0.75,
                    **effect_columns(chain),
                )
            )
    return items, stems


def _write(root, items, stems) -> Dataset:
    writer = DatasetWriter.open(root, identity={"test": True}, meta={"command": "test"})
    writer.write_part("b", items[2:], [s for s in stems if s.item_id not in ("0000000", "0000001")])
    writer.write_part("a", items[:2], [s for s in stems if s.item_id in ("0000000", "0000001")])
    writer.finalize()
    return Dataset.open(root)


def test_records_survive_tables_with_values_and_dtypes(tmp_path):
    items, stems = _records(5)
    dataset = _write(tmp_path / "ds", items, stems)
    for item in items:
        record, stem_records = dataset.item(item.item_id)
        assert record == item
        assert [stem_records[name] for name in STEM_NAMES] == [
            s for s in stems if s.item_id == item.item_id
        ]
    assert dataset.items["item_index"].tolist() == list(range(5))
    expected_kind = {"int64": "i", "double": "f", "bool": "b", "string": "O"}
    for frame, schema in ((dataset.items, ITEMS_SCHEMA), (dataset.stems, STEMS_SCHEMA)):
        assert list(frame.columns) == schema.names
        for field in schema:
            kind = frame[field.name].dtype.kind
            assert kind == expected_kind[str(field.type)] or (
                str(field.type) == "string" and frame[field.name].dtype == "str"
            ), field.name
    assert np.isnan(dataset.stems.loc[~dataset.stems["pitch_applied"], "pitch_semitones"]).all()


def test_tables_open_directly_in_pyarrow_and_duckdb(tmp_path):
    items, stems = _records(4)
    root = tmp_path / "ds"
    _write(root, items, stems)
    for path, schema in ((root / ITEMS_FILE, ITEMS_SCHEMA), (root / STEMS_FILE, STEMS_SCHEMA)):
        table = pq.read_table(path)
        assert table.schema.equals(schema)
        assert table.schema.metadata[METADATA_KEY] == str(SCHEMA_VERSION).encode()
    rows = duckdb.sql(
        f"SELECT item_id, run_seed, origin FROM '{root / ITEMS_FILE}' ORDER BY item_index"
    ).fetchall()
    assert rows == [(i.item_id, i.run_seed, i.origin) for i in items]
    pitched = duckdb.sql(
        f"SELECT count(*) FROM '{root / STEMS_FILE}' WHERE pitch_applied AND pitch_semitones < 0"
    ).fetchall()
    assert pitched == [(sum(s.pitch_applied and s.pitch_semitones < 0 for s in stems),)]


def test_newer_schema_version_is_refused_with_one_line(tmp_path):
    root = make_dataset(tmp_path / "ds", n_items=2)
    header = json.loads((root / DATASET_JSON).read_text())
    header["schema_version"] = SCHEMA_VERSION + 1
    (root / DATASET_JSON).write_text(json.dumps(header))
    with pytest.raises(ManifestError, match="upgrade msaug") as caught:
        Dataset.open(root)
    assert "\n" not in str(caught.value) and f"schema {SCHEMA_VERSION + 1}" in str(caught.value)
