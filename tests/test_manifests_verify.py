"""`verify`: a clean copy passes; each kind of damage is found, alone, with its path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factory import make_dataset

from manifests import Dataset, ManifestError
from manifests.files import write_audio
from manifests.schema import DATASET_JSON, table_file
from manifests.tables import write_tables
from manifests.verify import verify

STEMS_FILE = table_file("stems")


def _republish(root, stems: pd.DataFrame) -> None:
    """Rewrite the stems table as a careful editor would: listing and digest updated too, so
    only the inconsistency under test remains."""
    dataset = Dataset.open(root)
    write_tables(root, dict(dataset.header), dataset.items, stems)


VOCALS = "train/0000001/vocals.wav"


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "ds", n_items=3)


@pytest.mark.parametrize("quick", [False, True])
def test_clean_dataset_passes(dataset, quick):
    report = verify(dataset, quick=quick)
    assert report.ok and report.files == 15 and report.form == "folder"
    assert report.summary().startswith("OK: 15 files")


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[-7] ^= 0x01  # inside the samples: size and header stay valid
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def _remove(path):
    path.unlink()


def _add_extra(path):
    (path.parent / "extra.wav").write_bytes(path.read_bytes())


@pytest.mark.parametrize(
    ("damage", "kind", "where", "seen_by_quick"),
    [
        (_flip_byte, "altered", VOCALS, False),
        (_truncate, "truncated", VOCALS, True),
        (_remove, "missing", VOCALS, True),
        (_add_extra, "unlisted", "train/0000001/extra.wav", True),
    ],
)
def test_each_damage_is_reported_alone(dataset, damage, kind, where, seen_by_quick):
    damage(dataset / VOCALS)
    full = verify(dataset)
    assert [(p.kind, p.path) for p in full.problems] == [(kind, where)]
    assert not full.ok and f"1 {kind}" in full.summary()
    quick = verify(dataset, quick=True)
    assert [(p.kind, p.path) for p in quick.problems] == ([(kind, where)] if seen_by_quick else [])


def test_parallel_jobs_give_the_same_report(dataset):
    _flip_byte(dataset / VOCALS)
    _remove(dataset / "train/0000002/mixture.wav")
    assert verify(dataset, jobs=2).problems == verify(dataset, jobs=1).problems


def test_audio_of_the_wrong_shape_is_reported(dataset):
    """A file whose checksum matches a wrong row (a writer bug) still fails the shape check."""
    info = write_audio(dataset / VOCALS, np.zeros((2, 100), np.float32), 8000)
    stems = Dataset.open(dataset).stems
    row = stems["path"] == VOCALS
    stems.loc[row, "checksum"] = info.checksum
    stems.loc[row, "bytes"] = info.bytes
    _republish(dataset, stems)
    (problem,) = verify(dataset).problems
    assert (problem.kind, problem.path) == ("shape", VOCALS)
    assert "100 frames x 2 channels at 8000 Hz, manifest says 8000 x 2 at 8000 Hz" in problem.detail


def test_header_disagreeing_with_tables_is_reported(dataset):
    header = json.loads((dataset / DATASET_JSON).read_text())
    header["n_items"] = 4
    (dataset / DATASET_JSON).write_text(json.dumps(header))
    (problem,) = verify(dataset, quick=True).problems
    assert (problem.kind, problem.path) == ("manifest", DATASET_JSON)


def test_tables_disagreeing_with_each_other_are_reported(dataset):
    """A stem row moved to an unknown item: its item lacks it, and its file is now unlisted."""
    stems = Dataset.open(dataset).stems
    stems.loc[stems["path"] == VOCALS, "item_id"] = "9999999"
    _republish(dataset, stems)
    problems = [(p.kind, p.path) for p in verify(dataset).problems]
    assert problems == [
        ("manifest", "items"),
        ("manifest", "stems"),
        ("unlisted", VOCALS),
    ]


def test_an_edited_row_fails_on_the_table_checksum_and_the_digest(dataset):
    table = pq.read_table(dataset / STEMS_FILE)
    gains = table.column("gain_db").to_pylist()
    table = table.set_column(
        table.schema.get_field_index("gain_db"), "gain_db", pa.array([6.0, *gains[1:]])
    )
    header = json.loads((dataset / DATASET_JSON).read_text())
    pq.write_table(table, dataset / STEMS_FILE)
    Dataset.open(dataset)  # still opens: the edit is only found by verify
    problems = {(p.kind, p.path) for p in verify(dataset, quick=True).problems}
    assert ("manifest", STEMS_FILE) in problems and ("manifest", DATASET_JSON) in problems
    assert json.loads((dataset / DATASET_JSON).read_text()) == header


def test_an_edited_identity_fails_on_the_digest(dataset):
    header = json.loads((dataset / DATASET_JSON).read_text())
    header["identity"]["seed"] = 99
    (dataset / DATASET_JSON).write_text(json.dumps(header))
    (problem,) = verify(dataset, quick=True).problems
    assert (problem.kind, problem.path) == ("manifest", DATASET_JSON)
    assert "digest" in problem.detail


def test_typed_columns_edited_apart_from_the_chain_are_reported(dataset):
    stems = Dataset.open(dataset).stems
    stems["pitch_shift_applied"] = ~stems["pitch_shift_applied"]
    _republish(dataset, stems)
    (problem,) = verify(dataset, quick=True).problems
    assert (problem.kind, problem.path) == ("manifest", "stems")
    assert "disagree with `effects`" in problem.detail


def test_the_summary_names_schema_and_digest(dataset):
    report = verify(dataset, quick=True)
    digest = json.loads((dataset / DATASET_JSON).read_text())["digest"]
    assert report.ok and digest.startswith("sha256:") and digest in report.summary()


def test_not_a_dataset_is_one_clear_line(tmp_path):
    with pytest.raises(ManifestError, match="does not exist") as caught:
        verify(tmp_path / "nowhere")
    assert "\n" not in str(caught.value)
