"""`merge`: every row of every part, unique ids, provenance, and compatible parts only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from factory import make_dataset

from manifests import Dataset, ManifestError
from manifests.merge import merge, new_ids
from manifests.schema import DATASET_JSON, SCHEMA_VERSION
from manifests.verify import verify


def test_merge_keeps_all_rows_and_renames_collisions(tmp_path):
    a = make_dataset(tmp_path / "a", n_items=3, seed=0)
    b = make_dataset(tmp_path / "b", n_items=2, seed=1)
    written = merge([a, b], tmp_path / "c", command="msaug merge a b --out c")
    merged = Dataset.open(tmp_path / "c")
    ids = merged.items["item_id"].tolist()
    assert ids == ["0000000", "0000001", "0000002", "p1-0000000", "p1-0000001"]
    assert merged.items["origin"].tolist() == ["a", "a", "a", "b", "b"]
    assert len(merged.stems) == 4 * 5 and written.linked == 25
    assert set(merged.stems["item_id"]) == set(ids)
    renamed = merged.items.iloc[3]
    assert renamed["mixture_path"] == "train/p1-0000000/mixture.wav"
    assert renamed["checksum"] == Dataset.open(b).items["checksum"].iloc[0]
    stem = merged.stems[merged.stems["item_id"] == "p1-0000000"].iloc[0]
    assert stem["path"] == f"train/p1-0000000/{stem['stem']}.wav"
    assert verify(merged.root).ok
    header = json.loads((merged.root / DATASET_JSON).read_text())
    assert [p["label"] for p in header["parts"]] == ["a", "b"]
    assert [p["header"]["identity"]["seed"] for p in header["parts"]] == [0, 1]
    assert [p["renamed_ids"] for p in header["parts"]] == [0, 2]


def test_merging_a_merge_chains_origins(tmp_path):
    a = make_dataset(tmp_path / "a", n_items=1, seed=0)
    b = make_dataset(tmp_path / "b", n_items=1, seed=1)
    merge([a, b], tmp_path / "ab")
    merge([tmp_path / "ab", a], tmp_path / "aba")
    merged = Dataset.open(tmp_path / "aba")
    assert merged.items["origin"].tolist() == ["ab/a", "ab/b", "a"]
    assert merged.items["item_id"].tolist() == ["0000000", "p1-0000000", "p1-p1-0000000"]
    assert verify(merged.root).ok


def test_new_ids_are_deterministic_and_never_collide():
    parts = [["x", "y"], ["x", "p1-x"], ["x"]]
    renames = new_ids(parts)
    assert renames == [{}, {"x": "p1-p1-x"}, {"x": "p2-x"}]
    final = [renames[i].get(item, item) for i, ids in enumerate(parts) for item in ids]
    assert len(set(final)) == len(final)


def test_different_sample_rates_are_refused(tmp_path):
    a = make_dataset(tmp_path / "a", n_items=1, sample_rate=8000)
    b = make_dataset(tmp_path / "b", n_items=1, sample_rate=16000)
    with pytest.raises(ManifestError, match=r"8000 Hz.*16000 Hz") as caught:
        merge([a, b], tmp_path / "c")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "c").exists()


def test_a_single_part_is_refused(tmp_path):
    with pytest.raises(ManifestError, match="at least two"):
        merge([make_dataset(tmp_path / "a", n_items=1)], tmp_path / "c")


def test_a_schema_1_part_merges_with_a_schema_2_part(tmp_path):
    """Both are read as the current schema; the merge declares the union of their effects."""
    old = tmp_path / "old"
    shutil.copytree(Path(__file__).parent / "fixtures/schema1/dataset", old)
    new = make_dataset(tmp_path / "new", n_items=2, sample_rate=44100)
    merge([old, new], tmp_path / "c")
    merged = Dataset.open(tmp_path / "c")
    assert len(merged) == 5 and merged.schema_version == SCHEMA_VERSION
    assert {"time_stretch", "pitch_shift", "reverb"} <= set(merged.header["effect_columns"])
    assert verify(tmp_path / "c").ok


def test_parts_with_different_stems_are_refused(tmp_path):
    a = make_dataset(tmp_path / "a", n_items=1)
    b = make_dataset(tmp_path / "b", n_items=1)
    header = json.loads((b / DATASET_JSON).read_text())
    (b / DATASET_JSON).write_text(json.dumps({**header, "stems": ["vocals", "accompaniment"]}))
    with pytest.raises(ManifestError, match="stems"):
        merge([a, b], tmp_path / "c")
