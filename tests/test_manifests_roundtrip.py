"""The manifest contract: records -> Parquet -> records, other readers, schema versions."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from factory import make_dataset

from augment.config import build_config
from augment.effects import effect_columns as registry_columns
from manifests import Dataset, DatasetWriter, ItemRecord, ManifestError, StemRecord
from manifests.schema import (
    DATASET_JSON,
    ITEMS_SCHEMA,
    METADATA_KEY,
    SCHEMA_VERSION,
    STEM_NAMES,
    stems_schema,
    table_file,
)

DECLARED = {"pitch_shift": ["semitones"], "reverb": ["room_size", "damping", "wet_level"]}


def _records(n: int) -> tuple[list[ItemRecord], list[StemRecord]]:
    """Rows exercising every column type: nulls, bools, negative floats, big ints, unicode."""
    items, stems = [], []
    for index in range(n):
        item_id = f"{index:07d}"
        items.append(
            ItemRecord(
                item_id=item_id,
                subset="train",
                role="train" if index % 2 else "valid",
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
            effects = [
                {"kind": "pitch_shift", "params": {"semitones": -1.75 + k}},
                {"kind": "reverb", "params": {"room_size": 0.3, "damping": 0.25, "width": 1.0}},
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
                    effects=effects,
                    path=f"train/{item_id}/{stem}.wav",
                    checksum=f"{index * 10 + k:032x}",
                    bytes=441044,
                    rms_db=-30.5 + k,
                    peak=0.25 * (k + 1),
                    activity=0.75,
                )
            )
    return items, stems


def _write(root, items, stems, declared=DECLARED) -> Dataset:
    writer = DatasetWriter.open(root, {"test": True}, {"command": "test"}, STEM_NAMES, declared)
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
    for frame, schema in ((dataset.items, ITEMS_SCHEMA), (dataset.stems, stems_schema(DECLARED))):
        assert list(frame.columns) == schema.names
        for field in schema:
            if field.name == "effects":
                continue
            kind = frame[field.name].dtype.kind
            assert kind == expected_kind[str(field.type)] or (
                str(field.type) == "string" and frame[field.name].dtype == "str"
            ), field.name
    unshifted = ~dataset.stems["pitch_shift_applied"]
    assert np.isnan(dataset.stems.loc[unshifted, "pitch_shift_semitones"]).all()
    reverbed = dataset.stems[dataset.stems["reverb_applied"]]
    assert (reverbed["reverb_room_size"] == 0.3).all() and reverbed["reverb_wet_level"].isna().all()


def test_the_documented_recipes_run_in_pandas_polars_and_duckdb(tmp_path):
    items, stems = _records(4)
    root = tmp_path / "OUT"
    _write(root, items, stems)
    for table, schema in (("items", ITEMS_SCHEMA), ("stems", stems_schema(DECLARED))):
        parquet = pq.read_table(root / table_file(table))
        assert parquet.schema.equals(schema)
        assert parquet.schema.metadata[METADATA_KEY] == str(SCHEMA_VERSION).encode()
    shifted = sum(
        any(e["kind"] == "pitch_shift" and e["params"]["semitones"] < 0 for e in s.effects)
        for s in stems
    )
    # docs/manifest.md, "Opening the tables without msaug"
    assert len(pd.read_parquet(root / "manifest/items")) == 4
    assert len(pd.read_parquet(root / "manifest/stems")) == 16
    glob_items = duckdb.sql(f"SELECT * FROM '{root}/manifest/items/*.parquet'").fetchall()
    assert len(glob_items) == 4
    rows = duckdb.sql(
        f"SELECT item_id, run_seed, origin FROM '{root}/manifest/items/*.parquet' "
        "ORDER BY item_index"
    ).fetchall()
    assert rows == [(i.item_id, i.run_seed, i.origin) for i in items]
    by_column = duckdb.sql(
        f"""SELECT count(*) FROM '{root}/manifest/stems/*.parquet'
            WHERE pitch_shift_applied AND pitch_shift_semitones < 0"""
    ).fetchall()
    by_chain = duckdb.sql(
        f"""SELECT count(*) FROM '{root}/manifest/stems/*.parquet'
            WHERE len(list_filter(effects, lambda e: e.kind = 'pitch_shift'
                                  AND e.params['semitones'] < 0)) > 0"""
    ).fetchall()
    assert by_column == by_chain == [(shifted,)]
    joined = (
        pl.scan_parquet(f"{root}/manifest/stems/*.parquet")
        .join(pl.scan_parquet(f"{root}/manifest/items/*.parquet"), on="item_id")
        .filter(pl.col("pitch_shift_applied"))
        .group_by("mode")
        .agg(pl.col("pitch_shift_semitones").mean(), pl.len())
        .collect()
    )
    assert int(joined["len"].sum()) == sum(
        any(e["kind"] == "pitch_shift" for e in s.effects) for s in stems
    )


def test_a_config_that_adds_an_effect_keeps_the_table_schema(tmp_path):
    """The declaration comes from the effect registry, never from the config."""
    plain = build_config({})
    added = build_config({"effects": {"chorus": {"p": 0.5, "rate_hz": [0.5, 2.0]}}})
    assert "chorus" in {s.kind for s in added.effects["vocals"]}
    assert "chorus" not in {s.kind for s in plain.effects["vocals"]}
    declared = registry_columns()
    assert set(declared) >= {"pitch_shift", "time_stretch", "compressor", "reverb", "chorus"}
    assert declared["time_stretch"] == ["duration_factor"]
    items, stems = _records(2)
    with_chorus = [
        StemRecord(**{**s.to_dict(), "effects": [{"kind": "chorus", "params": {"rate_hz": 1.0}}]})
        for s in stems
    ]
    a = _write(tmp_path / "a", items, stems, declared)
    b = _write(tmp_path / "b", items, with_chorus, declared)
    schema_a = pq.read_schema(a.root / table_file("stems"))
    schema_b = pq.read_schema(b.root / table_file("stems"))
    assert schema_a.equals(schema_b)
    assert b.wide["vocals_chorus_applied"].all() and not a.wide["vocals_chorus_applied"].any()


def test_an_undeclared_effect_is_refused(tmp_path):
    items, stems = _records(2)
    with pytest.raises(ManifestError, match="not in the dataset's effect_columns"):
        _write(tmp_path / "ds", items, stems, {"pitch_shift": ["semitones"]})


def test_no_folder_mixes_tables(tmp_path):
    root = make_dataset(tmp_path / "ds", n_items=2)
    for table in ("items", "stems"):
        files = sorted(p.name for p in (root / "manifest" / table).iterdir())
        assert files == ["part-000000.parquet"]
    assert not list((root / "manifest").glob("*.parquet"))


def test_newer_schema_version_is_refused_with_one_line(tmp_path):
    root = make_dataset(tmp_path / "ds", n_items=2)
    header = json.loads((root / DATASET_JSON).read_text())
    header["schema_version"] = SCHEMA_VERSION + 1
    (root / DATASET_JSON).write_text(json.dumps(header))
    with pytest.raises(ManifestError, match="upgrade msaug") as caught:
        Dataset.open(root)
    assert "\n" not in str(caught.value) and f"schema {SCHEMA_VERSION + 1}" in str(caught.value)


@pytest.mark.parametrize(
    "path", ["/etc/passwd.wav", "../escape/mixture.wav", "train/./x.wav", "train/.hidden.wav",
             "train/a\nb/x.wav", "train/x.txt", "train//x.wav"],
)  # fmt: skip
def test_paths_outside_the_rules_are_refused_on_open(tmp_path, path):
    root = make_dataset(tmp_path / "ds", n_items=2)
    header = json.loads((root / DATASET_JSON).read_text())
    frame = pd.read_parquet(root / table_file("items"))
    frame.loc[0, "mixture_path"] = path
    pq.write_table(
        pq.read_table(root / table_file("items")).from_pandas(
            frame, schema=ITEMS_SCHEMA, preserve_index=False
        ),
        root / table_file("items"),
    )
    (root / DATASET_JSON).write_text(json.dumps(header))
    with pytest.raises(ManifestError, match="mixture_path") as caught:
        Dataset.open(root)
    assert "\n" not in str(caught.value)


def test_song_named_folders_pass_the_path_rules():
    from manifests.paths import AUDIO_EXTENSIONS, check_relative

    path = "train/Mr. So & So - Eyes (feat. O'Neil)/vocals.wav"
    assert check_relative(path, "test", AUDIO_EXTENSIONS) == path
