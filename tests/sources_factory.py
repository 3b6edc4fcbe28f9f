"""Tiny MUSDB18-HQ-layout source roots for tests: faded sines and noise bursts per track.

Each track has a silent stretch in its vocals (the first quarter), so suitability rejection
has something to reject, and distinct content per stem so renders can be checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from manifests.schema import STEM_NAMES


def stem_signal(stem: str, track: int, frames: int, sr: int) -> np.ndarray:
    rng = np.random.default_rng([track, STEM_NAMES.index(stem)])
    t = np.arange(frames) / sr
    if stem == "drums":
        beat = (t * 2.0) % 1.0
        mono = rng.standard_normal(frames) * 0.4 * np.exp(-beat * 30)
    else:
        f0 = {"vocals": 330.0, "bass": 82.5, "other": 220.0}[stem] * (1 + 0.05 * track)
        mono = 0.25 * np.sin(2 * np.pi * f0 * t) * (0.7 + 0.3 * np.sin(2 * np.pi * 0.25 * t))
    if stem == "vocals":
        mono[: frames // 4] = 0.0
    pan = 0.3 + 0.1 * STEM_NAMES.index(stem)
    return np.stack([mono * (1 - pan), mono * pan]).astype(np.float32)


def make_source_root(
    root: str | Path,
    tracks: int = 3,
    seconds: float = 8.0,
    sample_rate: int = 22050,
    subsets: tuple[str, ...] = ("train", "test"),
) -> Path:
    """Write `tracks` tracks per subset as `<root>/<subset>/Track NN/<stem>.wav` + mixture."""
    root = Path(root)
    frames = round(seconds * sample_rate)
    for subset in subsets:
        for k in range(tracks):
            folder = root / subset / f"Track {k:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            stems = {s: stem_signal(s, k, frames, sample_rate) for s in STEM_NAMES}
            for name, audio in {**stems, "mixture": sum(stems.values())}.items():
                sf.write(folder / f"{name}.wav", audio.T, sample_rate, subtype="FLOAT")
    return root
