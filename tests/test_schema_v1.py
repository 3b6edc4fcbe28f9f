"""Datasets of manifest schema 1 (tests/fixtures/schema1, written by msaug before schema 2)
keep opening, verifying, selecting, rerendering and training, and migrate in place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from augment.cli import main as msaug
from augment.demo import write_demo_dataset
from augment.rerender import rerender_item
from manifests import SCHEMA_VERSION, Dataset, ManifestError
from manifests.migrate import migrate
from manifests.schema import DATASET_JSON, table_file
from manifests.subset import write_selection
from manifests.verify import verify
from train.cli import main as mstrain

FIXTURE = Path(__file__).parent / "fixtures" / "schema1"


@pytest.fixture
def old(tmp_path) -> Path:
    shutil.copytree(FIXTURE / "dataset", tmp_path / "old")
    return tmp_path / "old"


def test_opens_as_the_current_schema_and_says_which_it_is(old):
    dataset = Dataset.open(old)
    assert dataset.schema_version == 1 and len(dataset) == 3
    assert set(dataset.items["role"]) == {"train"} and set(dataset.items["subset"]) == {"train"}
    stretched = dataset.stems[dataset.stems["time_stretch_applied"]]
    raw = Dataset.open(old).v1_tables[1]
    rates = raw.loc[stretched.index, "stretch_factor"]
    assert (stretched["time_stretch_duration_factor"] * rates).round(12).eq(1.0).all()
    chain = dataset.stems["effects"][0]
    assert chain[0]["kind"] == "pitch_shift" and set(chain[0]["params"]) == {"semitones"}


@pytest.mark.parametrize("form", ["dataset", "shards"])
def test_verifies_in_folder_and_shard_form(form):
    report = verify(FIXTURE / form)
    assert report.ok, report.problems
    assert report.schema_version == 1 and report.digest is None
    assert "no digest" in report.summary()


def test_selects_into_a_schema_2_dataset(old, tmp_path):
    selection = Dataset.open(old).select("mode == 'coherent' and vocals_pitch_shift_applied")
    write_selection(selection, tmp_path / "sub")
    sub = Dataset.open(tmp_path / "sub")
    assert sub.schema_version == SCHEMA_VERSION and len(sub) == len(selection)
    assert verify(tmp_path / "sub").ok


def test_rerenders_byte_identically(old, tmp_path):
    write_demo_dataset(tmp_path / "src", 3, 5.0, 0, "wav", 44100, 1)
    for item_id in ("0000000", "0000001", "0000002"):
        assert rerender_item(old, item_id, tmp_path / "src").ok


def test_trains(old, tmp_path):
    result = CliRunner().invoke(
        mstrain,
        [
            "--data", str(old), "--model", "unet", "--out", str(tmp_path / "run"),
            "--epochs", "1", "--segment", "0.2", "--batch-size", "2", "--workers", "0",
            "--valid-fraction", "0.34", "--model-arg", "widths=[4,8,16]",
            "--model-arg", "bottleneck=16",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "last.pt").is_file()


def test_migrate_rewrites_in_place_and_adds_a_digest(old):
    before = Dataset.open(old)
    result = CliRunner().invoke(msaug, ["migrate", str(old)])
    assert result.exit_code == 0, result.output
    assert "schema 1 -> 2" in result.output
    after = Dataset.open(old)
    assert after.schema_version == SCHEMA_VERSION
    assert after.items.equals(before.items)
    columns = [c for c in before.stems.columns if c != "effects"]
    assert sorted(after.stems.columns) == sorted(before.stems.columns)
    assert after.stems[columns].equals(before.stems[columns])
    assert list(after.stems["effects"]) == list(before.stems["effects"])
    assert not (old / "manifest" / "items.parquet").exists()
    assert (old / table_file("items")).is_file()
    report = verify(old)
    assert report.ok and report.digest == json.loads((old / DATASET_JSON).read_text())["digest"]
    again = CliRunner().invoke(msaug, ["migrate", str(old)])
    assert again.exit_code == 0 and "already" in again.output


def test_migrate_finishes_a_run_stopped_after_its_header(old):
    shutil.copy(old / "manifest" / "items.parquet", old / "leftover.parquet")
    migrate(old)
    shutil.move(old / "leftover.parquet", old / "manifest" / "items.parquet")
    migrate(old)
    assert not (old / "manifest" / "items.parquet").exists() and verify(old).ok


def test_migrate_refuses_shards(tmp_path):
    shutil.copytree(FIXTURE / "shards", tmp_path / "shards")
    with pytest.raises(ManifestError, match="unpack"):
        migrate(tmp_path / "shards")
