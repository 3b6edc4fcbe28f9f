"""The source layer: listing, exact segment reads, stem.mp4 + cache, and bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import stempeg
from sources_factory import make_source_root

from augment.errors import SourceError
from augment.prepare import prepare_cache
from augment.sources import STEM_IDS, SourceRoot, read_segment
from manifests.musdb_split import musdb_validation_tracks
from manifests.schema import STEM_NAMES

SR = 22050


def test_lists_tracks_per_subset_and_musdb_split(tmp_path):
    root = make_source_root(tmp_path, tracks=2, seconds=2.0, sample_rate=SR)
    valid_name = sorted(musdb_validation_tracks())[0]
    shutil.copytree(root / "train" / "Track 00", root / "train" / valid_name)
    sources = SourceRoot.open(root)
    assert sources.form == "wav"
    assert [t.name for t in sources.tracks("test")] == ["Track 00", "Track 01"]
    assert [t.name for t in sources.tracks("train", "valid")] == [valid_name]
    assert valid_name not in [t.name for t in sources.tracks("train", "train")]
    track = sources.tracks("train")[0]
    assert (track.sample_rate, track.channels, track.num_frames) == (SR, 2, 2 * SR)


def test_segment_read_is_exact(source_root):
    track = SourceRoot.open(source_root).tracks("train")[1]
    segment = read_segment(track, "bass", 1234, 5000)
    full, _ = sf.read(track.stem_path("bass"), dtype="float32")
    assert segment.shape == (2, 5000) and segment.dtype == np.float32
    np.testing.assert_array_equal(segment, full[1234:6234].T)


@pytest.fixture(scope="module")
def stem_root(tmp_path_factory):
    """The same tracks as a wav root, also written as real .stem.mp4 files (AAC)."""
    base = tmp_path_factory.mktemp("stemroot")
    wav_root = make_source_root(
        base / "wav", tracks=1, seconds=4.0, sample_rate=44100, subsets=("train",)
    )
    stem_root = base / "stem"
    (stem_root / "train").mkdir(parents=True)
    folder = wav_root / "train" / "Track 00"
    names = sorted(STEM_IDS, key=STEM_IDS.get)
    data = np.stack([sf.read(folder / f"{n}.wav", dtype="float32")[0] for n in names])
    stempeg.write_stems(
        str(stem_root / "train" / "Track 00.stem.mp4"),
        data,
        sample_rate=44100,
        writer=stempeg.StreamsWriter(codec="aac"),
    )
    return wav_root, stem_root


def _similar(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_stem_mp4_reads_match_wav_within_codec_tolerance(stem_root):
    wav_root, mp4_root = stem_root
    wav_track = SourceRoot.open(wav_root).tracks("train")[0]
    mp4 = SourceRoot.open(mp4_root)
    assert mp4.form == "stem"
    track = mp4.tracks("train")[0]
    assert (track.sample_rate, track.channels) == (44100, 2)
    for stem in ("vocals", "bass"):
        direct = read_segment(track, stem, 44100, 44100)
        assert direct.shape == (2, 44100)
        assert _similar(direct, read_segment(wav_track, stem, 44100, 44100)) > 0.95


def test_prepare_cache_equals_direct_reads_and_resumes(stem_root, tmp_path):
    _, mp4_root = stem_root
    summary = prepare_cache(mp4_root, tmp_path / "cache", jobs=1)
    assert (summary.decoded, summary.skipped) == (1, 0)
    cache = SourceRoot.open(tmp_path / "cache")
    assert cache.form == "wav"
    cached, direct = cache.tracks("train")[0], SourceRoot.open(mp4_root).tracks("train")[0]
    for stem in STEM_NAMES:
        a = read_segment(cached, stem, 22050, 44100)
        b = read_segment(direct, stem, 22050, 44100)
        assert _similar(a, b) > 0.999, stem
    again = prepare_cache(mp4_root, tmp_path / "cache", jobs=1)
    assert (again.decoded, again.skipped) == (0, 1)


def test_missing_root(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        SourceRoot.open(tmp_path / "nowhere")


def test_wrong_layout_says_what_was_expected_and_found(tmp_path):
    (tmp_path / "songs").mkdir()
    with pytest.raises(SourceError, match=r"no train/ or test/ folder \(found \['songs'\]\)"):
        SourceRoot.open(tmp_path)


def test_missing_stem(tmp_path):
    root = make_source_root(tmp_path, tracks=1, seconds=1.0, sample_rate=SR, subsets=("train",))
    (root / "train" / "Track 00" / "drums.wav").unlink()
    with pytest.raises(SourceError, match=r"has no drums\.wav"):
        SourceRoot.open(root)


def test_corrupt_file(tmp_path):
    root = make_source_root(tmp_path, tracks=1, seconds=1.0, sample_rate=SR, subsets=("train",))
    (root / "train" / "Track 00" / "bass.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(SourceError, match=r"bass\.wav is not readable audio"):
        SourceRoot.open(root)


def test_track_shorter_than_segment(source_root):
    track = SourceRoot.open(source_root).tracks("train")[0]
    with pytest.raises(SourceError, match="does not fit"):
        read_segment(track, "vocals", track.num_frames - 10, 100)


def test_wrong_sample_rate(source_root):
    with pytest.raises(SourceError, match="pass --sr 22050"):
        SourceRoot.open(source_root).check_sample_rate(44100)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--root", "{tmp}/none"], "does not exist"),
        (["--root", "{src}", "--sr", "44100"], "pass --sr 22050"),
        (["--root", "{src}", "--seconds", "60"], "long enough"),
        (["--root", "{src}", "--mode", "sideways"], "--mode must be one of"),
    ],
)
def test_cli_bad_input_is_one_line(args, message, source_root, tmp_path):
    args = [a.format(tmp=tmp_path, src=source_root) for a in args]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "augment",
            "render",
            "--out",
            str(tmp_path / "out"),
            "--n",
            "2",
            "--sr",
            "22050",
            "--seconds",
            "1",
            *args,
        ],
        capture_output=True,
        text=True,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
