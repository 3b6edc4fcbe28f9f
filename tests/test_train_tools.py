"""`mstrain separate --overlap` and `mstrain eval --tracks/--jobs` (issue 17).

One tiny one-source U-Net (vocals): museval scores it against the residual as a second
source, which costs a quarter of a four-source model's bss_eval, so scoring stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner, Result
from factory import make_dataset

from manifests import STEM_NAMES
from manifests.schema import MIXTURE
from train.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 8000
TRACKS = ("A - One", "B - Two", "C - Three")
TINY = [
    "--segment", "0.5", "--batch-size", "2", "--workers", "0", "--valid-fraction", "0.25",
    "--target", "vocals", "--model-arg", f"sample_rate={SR}", "--model-arg", "widths=[4,8]",
    "--model-arg", "bottleneck=8",
]  # fmt: skip


def mstrain(*args: object) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exit_code != 0 and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def refused(result: Result, message: str) -> None:
    """The project's user-error shape: exit 2, one line on stderr, no traceback."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("mstrain: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    data = make_dataset(tmp_path_factory.mktemp("data"), 4, 1.0, SR)
    out = tmp_path_factory.mktemp("runs") / "unet"
    assert mstrain("--data", data, "--out", out, "--epochs", 1, *TINY).exit_code == 0
    return out


@pytest.fixture(scope="module")
def musdb_root(tmp_path_factory) -> Path:
    """MUSDB18-HQ layout, three 1-second tracks of tones and noise, mixture = sum of stems."""
    root = tmp_path_factory.mktemp("musdb")
    t = np.arange(SR) / SR
    for k, name in enumerate(TRACKS):
        rng = np.random.default_rng(k)
        folder = root / "test" / name
        folder.mkdir(parents=True)
        stems = []
        for i, stem in enumerate(STEM_NAMES):
            tone = np.sin(2 * np.pi * 110 * (i + k + 1) * t) + 0.1 * rng.standard_normal(t.size)
            stems.append(0.1 * np.stack([tone, 0.5 * tone]).T)
            sf.write(folder / f"{stem}.wav", stems[-1], SR, subtype="FLOAT")
        sf.write(folder / f"{MIXTURE}.wav", sum(stems), SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def serial(run, musdb_root, tmp_path_factory) -> Path:
    """Two tracks named out of order, scored in the parent process, which has two torch
    threads where joblib's workers get fewer: eval must not let that change a byte."""
    out = tmp_path_factory.mktemp("eval") / "serial"
    args = ["--tracks", TRACKS[2], "--tracks", TRACKS[0], "--out", out]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = mstrain("eval", "--run", run, "--root", musdb_root, *args)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return out


def test_overlap_changes_the_estimate_and_keeps_the_length(run, tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, np.random.default_rng(3).uniform(-0.5, 0.5, (3 * SR + 123, 2)), SR)
    estimates = {}
    for overlap in ("0", "0.5", "0.25", None):
        flags = ["--chunk-seconds", "1"] + (["--overlap", overlap] if overlap else [])
        out = tmp_path / f"out-{overlap}"
        result = mstrain("separate", "--run", run, song, "--out", out, *flags)
        assert result.exit_code == 0, result.output
        estimates[overlap], _ = sf.read(out / "song" / "vocals.wav", dtype="float32")
        assert estimates[overlap].shape == (3 * SR + 123, 2)
    assert not np.allclose(estimates["0"], estimates["0.5"], atol=1e-4)
    assert np.array_equal(estimates["0.25"], estimates[None])  # the default is 0.25


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "nan"])
def test_overlap_outside_zero_to_one_is_refused_before_anything_is_written(run, tmp_path, value):
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((SR, 2)), SR)
    out = tmp_path / "out"
    result = mstrain("separate", "--run", run, song, "--out", out, "--overlap", value)
    refused(result, "--overlap is the fraction of a chunk shared with the next, 0 <= overlap < 1")
    assert not out.exists()


def test_chunking_that_rounds_to_no_hop_or_no_frame_is_refused(run, musdb_root, tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((SR, 2)), SR)
    args = ["separate", "--run", run, song, "--out", tmp_path / "out"]
    # 1 ms is 8 frames at the model's 8 kHz; 0.99 of 8 rounds to all 8
    refused(mstrain(*args, "--chunk-seconds", "0.001", "--overlap", "0.99"), "leaves no hop")
    refused(mstrain(*args, "--chunk-seconds", "0"), "--chunk-seconds 0 holds no frame")
    evaluation = ["eval", "--run", run, "--root", musdb_root, "--out", tmp_path / "e"]
    refused(mstrain(*evaluation, "--overlap", "1"), "0 <= overlap < 1")


def test_eval_tracks_scores_exactly_the_named_tracks_in_subset_order(serial):
    per_track = json.loads((serial / "per_track.json").read_text())
    assert list(per_track) == [TRACKS[0], TRACKS[2]]
    assert sorted(p.stem for p in (serial / "test").iterdir()) == [TRACKS[0], TRACKS[2]]
    assert (serial / "summary.md").read_text().startswith("2 tracks of the 'test' subset")


def test_eval_jobs_gives_the_scores_of_one_job(run, musdb_root, serial, tmp_path):
    args = ["--tracks", TRACKS[0], "--tracks", TRACKS[2], "--jobs", 2, "--out", tmp_path]
    result = mstrain("eval", "--run", run, "--root", musdb_root, *args)
    assert result.exit_code == 0, result.output
    for name in [
        "per_track.json",
        "summary.csv",
        "summary.md",
        *(f"test/{t}.json" for t in TRACKS[::2]),
    ]:
        assert (tmp_path / name).read_bytes() == (serial / name).read_bytes(), name


def test_eval_refuses_unknown_tracks_bad_jobs_and_run_options_of_nmf(run, musdb_root, tmp_path):
    args = ["eval", "--run", run, "--root", musdb_root, "--out", tmp_path / "e"]
    refused(mstrain(*args, "--tracks", "b - tow"), "did you mean 'B - Two'?")
    missing = mstrain(*args, "--tracks", TRACKS[0], "--tracks", "Zed - Nothing Like It")
    refused(missing, "'Zed - Nothing Like It' is not a track of the 'test' subset; it holds")
    assert all(repr(name) in missing.stderr for name in TRACKS)
    refused(mstrain(*args, "--jobs", 0), "--jobs must be a worker count")
    nmf = ["eval", "--model", "nmf", "--root", musdb_root, "--out", tmp_path / "n"]
    refused(mstrain(*nmf, "--tracks", TRACKS[0]), "--tracks applies to --run only")
    refused(mstrain(*nmf, "--jobs", 2), "--jobs applies to --run only")
    assert not (tmp_path / "e" / "per_track.json").exists()
