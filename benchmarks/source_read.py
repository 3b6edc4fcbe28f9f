"""Segment reads: `.stem.mp4` through stempeg/ffmpeg vs the `msaug prepare` wav cache.

Makes a small stem root (synthetic tracks written as real AAC .stem.mp4), decodes it into a
cache with `prepare_cache`, then reads the same random 10 s segments both ways and prints the
mean time per read and the ratio. Run: python benchmarks/source_read.py [--tracks 3] [--reads 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import stempeg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sources_factory import make_source_root

from augment.prepare import prepare_cache
from augment.sources import STEM_IDS, SourceRoot, read_segment
from manifests.schema import STEM_NAMES


def _make_stem_root(base: Path, tracks: int, seconds: float) -> Path:
    wav = make_source_root(
        base / "wav", tracks=tracks, seconds=seconds, sample_rate=44100, subsets=("train",)
    )
    stem_root = base / "stem" / "train"
    stem_root.mkdir(parents=True)
    names = sorted(STEM_IDS, key=STEM_IDS.get)
    for folder in sorted((wav / "train").iterdir()):
        data = np.stack([sf.read(folder / f"{n}.wav", dtype="float32")[0] for n in names])
        stempeg.write_stems(
            str(stem_root / f"{folder.name}.stem.mp4"),
            data,
            sample_rate=44100,
            writer=stempeg.StreamsWriter(codec="aac"),
        )
    return base / "stem"


def _time_reads(root: SourceRoot, requests: list[tuple[int, str, int]], frames: int) -> float:
    tracks = root.tracks("train")
    started = time.perf_counter()
    for track_index, stem, start in requests:
        read_segment(tracks[track_index], stem, start, frames)
    return (time.perf_counter() - started) / len(requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracks", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each track")
    parser.add_argument("--reads", type=int, default=40)
    args = parser.parse_args()
    frames = 10 * 44100
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        stem_root = _make_stem_root(base, args.tracks, args.seconds)
        started = time.perf_counter()
        prepare_cache(stem_root, base / "cache", jobs=1)
        prepare_seconds = time.perf_counter() - started
        mp4, cache = SourceRoot.open(stem_root), SourceRoot.open(base / "cache")
        rng = np.random.default_rng(0)
        limit = mp4.tracks("train")[0].num_frames - frames
        requests = [
            (int(rng.integers(args.tracks)), str(rng.choice(STEM_NAMES)), int(rng.integers(limit)))
            for _ in range(args.reads)
        ]
        direct = _time_reads(mp4, requests, frames)
        cached = _time_reads(cache, requests, frames)
    print(
        f"{args.reads} reads of 10 s stereo segments from {args.tracks} tracks of "
        f"{args.seconds:.0f} s"
    )
    print(f"stem.mp4 direct (stempeg/ffmpeg): {direct * 1000:8.1f} ms per read")
    print(f"wav cache (soundfile slice):      {cached * 1000:8.1f} ms per read")
    print(f"ratio direct / cache:             {direct / cached:8.1f}x")
    print(f"one-off prepare of the {args.tracks} tracks: {prepare_seconds:.1f} s")


if __name__ == "__main__":
    main()
