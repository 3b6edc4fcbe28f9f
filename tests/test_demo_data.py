"""The demo dataset: musdb reads both forms, mixtures are exact sums, the music has structure."""

from __future__ import annotations

import shutil
from pathlib import Path

import musdb
import numpy as np
import pytest
from click.testing import CliRunner

from augment.cli import main
from augment.demo import write_demo_dataset
from augment.demo.writer import splits
from augment.errors import ConfigError
from manifests.files import read_audio
from manifests.schema import MIXTURE, STEM_NAMES

SR = 22050
SECONDS = 6.0
TRACKS = 2
SILENT = 0.002
"""Window RMS under which the render's silence filter calls a window inactive."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("demo")
    names = write_demo_dataset(root, TRACKS, SECONDS, seed=0, fmt="both", sample_rate=SR)
    return root, names


def _track_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_dir())


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _window_rms(audio: np.ndarray, window: int) -> np.ndarray:
    frames = audio.shape[1] // window * window
    windows = audio[:, :frames].reshape(audio.shape[0], -1, window)
    return np.sqrt(np.mean(windows**2, axis=(0, 2)))


def _longest_run(flags: np.ndarray) -> int:
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


@pytest.mark.parametrize(("tracks", "train", "test"), [(1, 1, 0), (2, 1, 1), (3, 2, 1), (12, 9, 3)])
def test_a_quarter_of_tracks_is_test(tracks, train, test):
    assert [splits(tracks).count(s) for s in ("train", "test")] == [train, test]


def test_musdb_reads_wav_layout(demo):
    root, names = demo
    db = musdb.DB(str(root), is_wav=True)
    assert [(t.name, t.subset) for t in db] == [(names[0], "train"), (names[1], "test")]
    for track in db:
        assert (track.rate, track.samples) == (SR, round(SECONDS * SR))
        assert sorted(track.sources) == sorted(STEM_NAMES)
    assert db[0].stems.shape == (5, round(SECONDS * SR), 2)


def test_stem_files_decode_to_the_wav_stems(demo):
    """Each AAC stream holds the stem musdb's stem_ids put there, in time with the wav file.

    ffmpeg trims the encoder's priming samples, so the streams start aligned and only gain up
    to one AAC frame (1024 samples) of padding at the end.
    """
    root, names = demo
    db = musdb.DB(str(root))
    assert [(t.name, t.subset) for t in db] == [(names[0], "train"), (names[1], "test")]
    for track in db:
        assert track.rate == SR
        decoded = track.stems
        for name, stem_id in db.setup["stem_ids"].items():
            original = read_audio(root / track.subset / track.name / f"{name}.wav").T
            frames = len(original)
            assert frames <= decoded.shape[1] <= frames + 1024
            stream = decoded[stem_id, :frames]
            assert np.corrcoef(stream.ravel(), original.ravel())[0, 1] > 0.99, name
            ratio = np.sqrt(np.mean(stream**2) / np.mean(original**2))
            assert 0.95 < ratio < 1.05, name


def test_mixture_is_the_sum_of_the_stem_files(demo):
    root, _ = demo
    for folder in _track_dirs(root):
        stems = [read_audio(folder / f"{name}.wav") for name in STEM_NAMES]
        mixture = read_audio(folder / f"{MIXTURE}.wav")
        np.testing.assert_array_equal(mixture, np.sum(stems, axis=0))


def test_levels_are_like_real_stems(demo):
    root, _ = demo
    for folder in _track_dirs(root):
        for name in STEM_NAMES:
            assert 0.05 < np.abs(read_audio(folder / f"{name}.wav")).max() <= 0.5
        assert np.abs(read_audio(folder / f"{MIXTURE}.wav")).max() < 0.9


def test_rerun_with_more_jobs_rewrites_identical_bytes(demo, tmp_path):
    root, names = demo
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    before = _files(root)
    assert write_demo_dataset(copy, TRACKS, SECONDS, 0, "both", SR, jobs=2) == names
    assert _files(copy) == before


def test_another_seed_gives_other_music(demo, tmp_path):
    root, names = demo
    other = write_demo_dataset(tmp_path, 1, SECONDS, seed=1, sample_rate=SR)
    first = read_audio(root / "train" / names[0] / f"{MIXTURE}.wav")
    assert not np.array_equal(read_audio(tmp_path / "train" / other[0] / f"{MIXTURE}.wav"), first)


def test_vocals_rest_for_seconds_and_every_stem_plays(demo):
    window = SR // 10
    for folder in _track_dirs(demo[0]):
        for name in STEM_NAMES:
            rms = _window_rms(read_audio(folder / f"{name}.wav"), window)
            assert np.sum(rms > 5 * SILENT) >= 10, f"{folder.name}: {name} barely plays"
        vocals = _window_rms(read_audio(folder / "vocals.wav"), window)
        assert _longest_run(vocals < SILENT) >= 20, f"{folder.name}: no 2 s vocal rest"


def test_vocals_sing_a_pitch_in_the_voice_range(demo):
    """Autocorrelation f0 of the loudest vocal frames: periodic (not noise) and 100-1000 Hz."""
    size, low, high = 2048, SR // 1000, SR // 60
    for folder in _track_dirs(demo[0]):
        mono = read_audio(folder / "vocals.wav").mean(axis=0).astype(np.float64)
        frames = mono[: mono.size // size * size].reshape(-1, size)
        loud = frames[np.argsort(np.sum(frames**2, axis=1))[-5:]]
        pitches = []
        for frame in loud:
            frame = frame - frame.mean()
            corr = np.array(
                [
                    np.dot(frame[:-lag], frame[lag:]) / np.dot(frame, frame)
                    for lag in range(low, high)
                ]
            )
            assert corr.max() > 0.5, f"{folder.name}: vocals are not periodic"
            lag = low + int(np.flatnonzero(corr > 0.9 * corr.max())[0])
            pitches.append(SR / lag)
        assert 100 < np.median(pitches) < 1000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tracks": 0}, "--tracks"),
        ({"seconds": 4.9}, "--seconds"),
        ({"seed": -1}, "--seed"),
        ({"fmt": "flac"}, "--format"),
        ({"sample_rate": 8000}, "--sr"),
        ({"fmt": "stem", "sample_rate": 20000}, "--sr 20000 cannot be stored as AAC"),
        ({"jobs": 0}, "--jobs"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        write_demo_dataset(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_raises_config_error(tmp_path):
    path = tmp_path / "taken"
    path.write_text("")
    with pytest.raises(ConfigError, match="is not a folder"):
        write_demo_dataset(path)


def test_cli_writes_a_dataset_musdb_reads(tmp_path):
    out = tmp_path / "demo"
    args = ["demo-data", str(out), "--tracks", "2", "--seconds", "5", "--sr", "16000"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "wrote 2 tracks" in result.output
    db = musdb.DB(str(out), is_wav=True)
    assert sorted(t.subset for t in db) == ["test", "train"]
    assert db[0].rate == 16000


def test_cli_reports_bad_arguments_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["demo-data", str(tmp_path / "x"), "--seconds", "2"])
    assert result.exit_code == 2
    assert "msaug: error: --seconds must be at least 5, got 2" in result.output
