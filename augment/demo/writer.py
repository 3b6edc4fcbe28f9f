"""Write the demo dataset as MUSDB18-HQ folders, MUSDB18 `.stem.mp4` files, or both.

Tracks are independent jobs: each draws from its own generator and writes its own files
atomically, so the bytes do not depend on the number of workers, and a crash leaves whole
files (or hidden temporaries) but never a truncated file under a track's name.
"""

from __future__ import annotations

import os
from pathlib import Path

import joblib
import numpy as np
import stempeg
from tqdm import tqdm

from augment.demo.track import SUBTYPE, DemoTrack, render_track
from augment.errors import ConfigError
from manifests.files import atomic_path, write_audio
from manifests.schema import MIXTURE, STEM_NAMES

FORMATS = ("wav", "stem", "both")

STREAM_ORDER = (MIXTURE, "drums", "bass", "other", "vocals")
"""Streams of a `.stem.mp4` in musdb's `stem_ids` order."""

AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
AAC_BITRATE = 256_000
"""Per stereo stream, as in MUSDB18."""

MIN_SECONDS = 5.0
MIN_SAMPLE_RATE = 16_000
"""Hi-hats and consonants need content up to several kHz."""

TEST_SHARE = 0.25


def check_arguments(
    tracks: int, seconds: float, seed: int, fmt: str, sample_rate: int, jobs: int
) -> None:
    """Raise ConfigError naming the first argument out of range."""
    if tracks < 1:
        raise ConfigError(f"--tracks must be at least 1, got {tracks}")
    if not seconds >= MIN_SECONDS:
        raise ConfigError(f"--seconds must be at least {MIN_SECONDS:g}, got {seconds:g}")
    if seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {seed}")
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if sample_rate < MIN_SAMPLE_RATE:
        raise ConfigError(f"--sr must be at least {MIN_SAMPLE_RATE} Hz, got {sample_rate}")
    if fmt != "wav" and sample_rate not in AAC_RATES:
        rates = ", ".join(str(rate) for rate in AAC_RATES if rate >= MIN_SAMPLE_RATE)
        raise ConfigError(f"--sr {sample_rate} cannot be stored as AAC stems; use one of {rates}")
    if jobs == 0:
        raise ConfigError("--jobs must be a worker count (1 or more) or negative (all CPUs)")


def splits(tracks: int) -> list[str]:
    """Subset of each track: the last quarter (at least one when there are two) is "test"."""
    tests = min(max(round(TEST_SHARE * tracks), 1), tracks - 1)
    return ["train"] * (tracks - tests) + ["test"] * tests


def write_stem_file(path: Path, track: DemoTrack, sample_rate: int) -> None:
    """One AAC stream per source in a single MP4, written atomically.

    ffmpeg picks the container from the file suffix, so the temporary name keeps `.mp4`.
    """
    sources = {**track.stems, MIXTURE: track.mixture}
    data = np.stack([sources[name].T for name in STREAM_ORDER])
    with atomic_path(path) as temp:
        encoded = temp.with_name(f"{temp.name}.mp4")
        try:
            writer = stempeg.StreamsWriter(
                codec="aac", bitrate=AAC_BITRATE, stem_names=list(STREAM_ORDER)
            )
            stempeg.write_stems(str(encoded), data, sample_rate=sample_rate, writer=writer)
            os.replace(encoded, temp)
        finally:
            encoded.unlink(missing_ok=True)


def write_track(
    out: Path, seed: int, index: int, split: str, seconds: float, sample_rate: int, fmt: str
) -> str:
    """Render track `index` and write it in `fmt`; return its name."""
    track = render_track(seed, index, seconds, sample_rate)
    if fmt in ("wav", "both"):
        folder = out / split / track.name
        for name in STEM_NAMES:
            write_audio(folder / f"{name}.wav", track.stems[name], sample_rate, SUBTYPE)
        write_audio(folder / f"{MIXTURE}.wav", track.mixture, sample_rate, SUBTYPE)
    if fmt in ("stem", "both"):
        write_stem_file(out / split / f"{track.name}.stem.mp4", track, sample_rate)
    return track.name


def write_demo_dataset(
    out: str | Path,
    tracks: int = 12,
    seconds: float = 30.0,
    seed: int = 0,
    fmt: str = "wav",
    sample_rate: int = 44100,
    jobs: int = 1,
) -> list[str]:
    """Write `tracks` demo songs under `out`/{train,test}; return their names in track order.

    Rerunning with the same arguments rewrites identical files.
    """
    check_arguments(tracks, seconds, seed, fmt, sample_rate, jobs)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder; pick a folder path")
    tasks = (
        joblib.delayed(write_track)(out, seed, index, split, seconds, sample_rate, fmt)
        for index, split in enumerate(splits(tracks))
    )
    written = joblib.Parallel(n_jobs=jobs, return_as="generator")(tasks)
    return list(tqdm(written, total=tracks, desc="demo tracks", unit="track"))
