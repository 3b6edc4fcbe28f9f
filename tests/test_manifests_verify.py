"""`verify`: a clean copy passes; each kind of damage is found, alone, with its path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from factory import make_dataset

from manifests import ManifestError
from manifests.files import write_audio
from manifests.schema import DATASET_JSON, STEMS_FILE, STEMS_SCHEMA
from manifests.verify import verify
from manifests.writer import write_table

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
    stems = pd.read_parquet(dataset / STEMS_FILE)
    row = stems["path"] == VOCALS
    stems.loc[row, "checksum"] = info.checksum
    stems.loc[row, "bytes"] = info.bytes
    write_table(dataset / STEMS_FILE, stems, STEMS_SCHEMA)
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
    stems = pd.read_parquet(dataset / STEMS_FILE)
    stems.loc[stems["path"] == VOCALS, "item_id"] = "9999999"
    write_table(dataset / STEMS_FILE, stems, STEMS_SCHEMA)
    problems = [(p.kind, p.path) for p in verify(dataset).problems]
    assert problems == [
        ("manifest", "manifest/items.parquet"),
        ("manifest", "manifest/stems.parquet"),
        ("unlisted", VOCALS),
    ]


def test_not_a_dataset_is_one_clear_line(tmp_path):
    with pytest.raises(ManifestError, match="does not exist") as caught:
        verify(tmp_path / "nowhere")
    assert "\n" not in str(caught.value)
