"""The validation split inside a rendered dataset: real songs, unaugmented, where musdb looks."""

from __future__ import annotations

import os
from pathlib import Path

import musdb
import pytest
from click.testing import CliRunner
from sources_factory import make_source_root

from augment.errors import ConfigError
from augment.render import RenderSettings, render_dataset
from augment.rerender import rerender_item
from manifests import Dataset
from manifests.musdb_split import musdb_validation_tracks
from manifests.pack import pack, unpack
from manifests.subset import write_selection
from manifests.verify import verify
from train.cli import main as mstrain

SR = 22050
ODD = "Mr. So & So - It's 1.0"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = make_source_root(tmp_path_factory.mktemp("src"), tracks=3, seconds=4.0, sample_rate=SR)
    (root / "train" / "Track 02").rename(root / "train" / ODD)
    musdb_name = sorted(musdb_validation_tracks())[0]
    (root / "train" / "Track 01").rename(root / "train" / musdb_name)
    return root


def _settings(root, **changes) -> RenderSettings:
    base = {"root": str(root), "seconds": 1.0, "sample_rate": SR, "quality": "fast"}
    return RenderSettings(**{**base, **changes})


@pytest.fixture(scope="module")
def dataset(root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("valid") / "ds"
    render_dataset(_settings(root), out, n=4, jobs=1, progress=False)
    return out


def test_musdb_validation_songs_are_written_unaugmented_and_never_drawn(root, dataset):
    data = Dataset.open(dataset)
    name = sorted(musdb_validation_tracks())[0]
    songs = data.items[data.items["role"] == "valid"]
    assert list(songs["item_id"]) == [name] and verify(dataset).ok
    trained = data.stems[~data.stems["item_id"].isin(songs["item_id"])]
    assert name not in set(trained["source_track"])
    for stem in ("mixture", "vocals"):
        placed, source = (
            dataset / "train" / name / f"{stem}.wav",
            root / "train" / name / f"{stem}.wav",
        )
        assert placed.read_bytes() == source.read_bytes()
        assert os.stat(placed).st_ino == os.stat(source).st_ino  # a hard link: free
    assert rerender_item(dataset, name).ok


def test_musdb_finds_the_songs_as_its_valid_split_and_the_items_as_train(dataset):
    valid = musdb.DB(str(dataset), is_wav=True, subsets="train", split="valid").tracks
    train = musdb.DB(str(dataset), is_wav=True, subsets="train", split="train").tracks
    assert [t.name for t in valid] == [sorted(musdb_validation_tracks())[0]]
    assert sorted(t.name for t in train) == [f"{i:07d}" for i in range(4)]


def test_named_songs_with_odd_names_travel_through_select_and_pack(root, tmp_path):
    out = tmp_path / "ds"
    render_dataset(_settings(root), out, n=3, jobs=1, progress=False, valid_tracks=(ODD,))
    data = Dataset.open(out)
    assert set(data.items.loc[data.items["role"] == "valid", "item_id"]) == {ODD}
    selection = data.select("item_index == 0")
    assert set(selection.items["item_id"]) == {"0000000", ODD}  # always carried
    write_selection(selection, tmp_path / "sub")
    assert verify(tmp_path / "sub").ok
    pack(out, tmp_path / "shards")
    unpack(tmp_path / "shards", tmp_path / "back")
    assert (tmp_path / "back" / "train" / ODD / "mixture.wav").is_file()
    pack(out, tmp_path / "novalid", include_valid=False)
    packed = Dataset.open(tmp_path / "novalid")
    assert ODD not in set(packed.items["item_id"]) and verify(tmp_path / "novalid").ok


def test_mstrain_validates_on_the_real_songs(dataset, tmp_path):
    args = [
        "--data", dataset, "--model", "unet", "--out", tmp_path / "run", "--epochs", "1",
        "--segment", "0.5", "--batch-size", "2", "--workers", "0", "--batches-per-epoch", "1",
        "--model-arg", f"sample_rate={SR}", "--model-arg", "widths=[4,8,16]",
        "--model-arg", "bottleneck=16",
    ]  # fmt: skip
    result = CliRunner().invoke(mstrain, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "training on 4 items" in result.output
    assert "validating on 1 real songs of the dataset's validation split" in result.output


def test_a_split_that_would_draw_the_songs_is_refused(root, tmp_path):
    with pytest.raises(ConfigError, match="would draw the validation songs"):
        render_dataset(
            _settings(root, split="all"), tmp_path / "x", n=1, jobs=1, progress=False, valid_count=1
        )


def test_merging_two_renders_keeps_each_validation_song_once(root, dataset, tmp_path):
    from manifests.merge import merge

    other = tmp_path / "other"
    render_dataset(_settings(root, seed=1), other, n=2, jobs=1, progress=False)
    merge([dataset, other], tmp_path / "merged")
    merged = Dataset.open(tmp_path / "merged")
    songs = merged.items[merged.items["role"] == "valid"]
    assert list(songs["item_id"]) == [sorted(musdb_validation_tracks())[0]]
    assert len(merged) == 4 + 2 + 1 and verify(tmp_path / "merged").ok
