"""`select`: the rows a query names, as a dataset of its own that verifies clean."""

from __future__ import annotations

import json
import os

import pytest
from factory import make_dataset

from manifests import Dataset, ManifestError
from manifests.schema import DATASET_JSON
from manifests.subset import write_selection
from manifests.verify import verify

WHERE = "mode == 'coherent' and not vocals_pitch_shift_applied and item_index >= 2"


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "ds", n_items=8)


def _expected_ids(parent: Dataset) -> list[str]:
    """The same question answered from the two tables directly, without the wide frame."""
    stems = parent.stems
    pitched = set(stems.loc[(stems["stem"] == "vocals") & stems["pitch_shift_applied"], "item_id"])
    items = parent.items
    keep = (items["mode"] == "coherent") & (items["item_index"] >= 2)
    return [i for i in items.loc[keep, "item_id"] if i not in pitched]


def test_selection_holds_exactly_the_matching_rows_and_verifies(dataset, tmp_path):
    parent = Dataset.open(dataset)
    written = write_selection(parent.select(WHERE), tmp_path / "sub", command="msaug select")
    sub = Dataset.open(tmp_path / "sub")
    assert (
        sub.items["item_id"].tolist() == _expected_ids(parent) == ["0000002", "0000004", "0000006"]
    )
    assert sorted(set(sub.stems["item_id"])) == sub.items["item_id"].tolist()
    assert len(sub.stems) == 4 * len(sub)
    columns = ["item_id", "checksum", "mixture_path"]
    assert sub.items[columns].equals(
        parent.items[parent.items["item_id"].isin(sub.items["item_id"])][columns].reset_index(
            drop=True
        )
    )
    assert verify(sub.root).ok
    assert (written.n_items, written.linked, written.copied) == (3, 15, 0)
    header = json.loads((sub.root / DATASET_JSON).read_text())
    assert header["where"] == WHERE and header["n_items"] == 3
    assert header["parent"]["root"] == str(dataset.resolve())
    assert header["parent"]["header"]["n_items"] == 8
    assert header["identity"] == parent.header["identity"]


def test_audio_is_hard_linked_unless_copy_is_asked(dataset, tmp_path):
    selection = Dataset.open(dataset).select("item_index == 1")
    write_selection(selection, tmp_path / "linked")
    write_selection(selection, tmp_path / "copied", copy=True)
    relative = "train/0000001/vocals.wav"
    source = os.stat(dataset / relative)
    assert os.stat(tmp_path / "linked" / relative).st_ino == source.st_ino
    copied = tmp_path / "copied" / relative
    assert os.stat(copied).st_ino != source.st_ino
    assert copied.read_bytes() == (dataset / relative).read_bytes()


def test_selection_of_a_selection_keeps_narrowing(dataset, tmp_path):
    write_selection(Dataset.open(dataset).select("item_index < 6"), tmp_path / "a")
    write_selection(Dataset.open(tmp_path / "a").select("mode == 'incoherent'"), tmp_path / "b")
    assert Dataset.open(tmp_path / "b").items["item_id"].tolist() == [
        "0000001",
        "0000003",
        "0000005",
    ]
    assert verify(tmp_path / "b").ok


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("mode ==", "does not parse"),
        ("no_such_column > 1", "no column"),
        ("item_index", "true/false condition"),
        ("item_index > 100", "selects no items"),
    ],
)
def test_bad_where_is_one_clear_line(dataset, where, message):
    with pytest.raises(ManifestError, match=message) as caught:
        Dataset.open(dataset).select(where)
    assert "\n" not in str(caught.value)


def test_output_must_be_new_and_outside_the_dataset(dataset, tmp_path):
    selection = Dataset.open(dataset).select("item_index == 0")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(ManifestError, match="not empty"):
        write_selection(selection, tmp_path / "full")
    with pytest.raises(ManifestError, match="inside the input"):
        write_selection(selection, dataset / "sub")


def test_failure_leaves_no_output_folder(dataset, tmp_path):
    (dataset / "train/0000003/drums.wav").unlink()
    with pytest.raises(ManifestError, match="missing"):
        write_selection(Dataset.open(dataset).select(None), tmp_path / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_leftover_of_an_interrupted_run_is_removed(dataset, tmp_path):
    leftover = tmp_path / ".sub.tmp-99999"
    (leftover / "train").mkdir(parents=True)
    os.utime(leftover, (0, 0))  # an old run's, with no lock file
    write_selection(Dataset.open(dataset).select("item_index == 0"), tmp_path / "sub")
    assert not leftover.exists() and verify(tmp_path / "sub").ok
