"""`mstrain --data MUSDB18HQ_ROOT`: the peers' baseline, the songs with online remixing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from manifests import STEM_NAMES
from manifests.musdb_split import musdb_validation_tracks
from manifests.schema import MIXTURE
from train.cli import main
from train.songs import open_training_data

SR = 8000


def _song(folder: Path, seed: int, seconds: float = 3.0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    stems = {
        s: (0.1 * rng.standard_normal((int(seconds * SR), 2))).astype(np.float32)
        for s in STEM_NAMES
    }
    for name, audio in {**stems, MIXTURE: sum(stems.values())}.items():
        sf.write(folder / f"{name}.wav", audio, SR, subtype="FLOAT")


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hq")
    for k, name in enumerate(["A - One", "B & C - Two's", sorted(musdb_validation_tracks())[0]]):
        _song(root / "train" / name, k)
    return root


def test_a_song_root_is_a_dataset_of_its_training_songs(songs):
    dataset = open_training_data(songs)
    assert sorted(dataset.items["item_id"]) == ["A - One", "B & C - Two's"]
    assert dataset.sample_rate == SR and dataset.manifest_checksum().startswith("songs:")


def test_training_on_songs_validates_on_the_real_validation_song(songs, tmp_path):
    args = [
        "--data", songs, "--model", "unet", "--out", tmp_path / "run", "--epochs", "1",
        "--segment", "0.5", "--batch-size", "2", "--workers", "0", "--batches-per-epoch", "2",
        "--model-arg", f"sample_rate={SR}", "--model-arg", "widths=[4,8,16]",
        "--model-arg", "bottleneck=16", "--remix", "--online-gain", "0.25", "1.25",
    ]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "training on 2 items" in result.output
    assert "validating on 1 real tracks" in result.output
