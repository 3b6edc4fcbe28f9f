"""The source project's augmentation chain, re-implemented as the baseline of benchmarks/render.py.

It follows the source notebook (`src/data/MUSDB18_Audio_Data_Augmentation.ipynb`) step by step,
so the benchmark charges the baseline with what the source actually computed:

- stems are mono (the mean of the channels);
- pitch shift: `librosa.effects.pitch_shift`; time stretch: `librosa.effects.time_stretch`
  with `rate = 1 / factor` (the source's factor is a length multiplier), then zero-pad or crop
  to the segment length;
- compression: sample by sample on the peak-normalised stem, |x| above a linear threshold
  becomes threshold + (|x| - threshold) / ratio (no attack or release);
- reverb: direct `np.convolve` with an impulse of N(0, 0.1) noise, `room_size` seconds long,
  decaying as exp(-10 * damping * k / length), mixed 0.7 dry + 0.3 wet;
- peak normalisation before and after every step and once more at the end;
- mixture = sum of the stems / 4; five wav files written with soundfile's default (16-bit PCM).

The draws come from an msaug plan (same segments, same effects applied, same values) so that
each item costs both implementations the same work. Left out, in the baseline's favour: the
source decoded the whole track with musdb (a full .stem.mp4 decode) on every segment attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from augment.effects import Compressor, Effect, PitchShift, Reverb, TimeStretch

DRY, WET = 0.7, 0.3


@dataclass(frozen=True)
class SourceDraw:
    """One stem's effects in the source's terms; None where the effect's coin said no."""

    semitones: float | None
    rate: float | None  # librosa's rate: > 1 is shorter (the source's factor is 1 / rate)
    compression: tuple[float, float] | None  # (linear threshold of the normalised stem, ratio)
    reverb: tuple[float, float] | None  # (room_size, damping)

    @classmethod
    def from_effects(cls, effects: Sequence[Effect], source_peak: float) -> SourceDraw:
        """The same draws as an msaug chain. msaug stores the compressor threshold in dBFS of
        the segment's peak; on the source's normalised stem that is the linear fraction."""
        found = {type(e): e for e in effects}
        pitch, stretch = found.get(PitchShift), found.get(TimeStretch)
        comp, verb = found.get(Compressor), found.get(Reverb)
        return cls(
            semitones=pitch.semitones if pitch else None,
            rate=1.0 / stretch.duration_factor if stretch else None,
            compression=(10 ** (comp.threshold_db / 20) / source_peak, comp.ratio)
            if comp
            else None,
            reverb=(verb.room_size, verb.damping) if verb else None,
        )


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.max(np.abs(x))


def _compress(x: np.ndarray, threshold: float, ratio: float) -> np.ndarray:
    magnitude = np.abs(x)
    above = magnitude > threshold
    gain = (threshold + (magnitude[above] - threshold) / ratio) / magnitude[above]
    out = x.copy()
    out[above] *= gain
    return out


def _reverb(
    x: np.ndarray, sr: int, room_size: float, damping: float, rng: np.random.Generator
) -> np.ndarray:
    length = int(sr * room_size)
    impulse = rng.normal(0.0, 0.1, length) * np.exp(-np.arange(length) * damping * 10 / length)
    return DRY * x + WET * np.convolve(x, impulse)[: len(x)]


def augment_stem(
    mono: np.ndarray, sr: int, draw: SourceDraw, frames: int, rng: np.random.Generator
) -> np.ndarray:
    """The source's per-stem chain: each applied step normalises its input and its output."""
    y = mono
    if draw.semitones is not None:
        y = _normalise(librosa.effects.pitch_shift(_normalise(y), sr=sr, n_steps=draw.semitones))
    if draw.rate is not None:
        y = _normalise(librosa.effects.time_stretch(_normalise(y), rate=draw.rate))
    if draw.compression is not None:
        y = _normalise(_compress(_normalise(y), *draw.compression))
    if draw.reverb is not None:
        y = _normalise(_reverb(_normalise(y), sr, *draw.reverb, rng))
    y = _normalise(y)
    if len(y) < frames:
        y = np.pad(y, (0, frames - len(y)))
    return y[:frames]


def render_item(
    stems: dict[str, np.ndarray],
    sr: int,
    draws: dict[str, SourceDraw],
    frames: int,
    rng: np.random.Generator,
    out: Path,
) -> None:
    """Augment (channels, n) stems the source's way and write its five mono wav files."""
    augmented = {
        name: augment_stem(audio[:, :frames].mean(axis=0), sr, draws[name], frames, rng)
        for name, audio in stems.items()
    }
    mixture = sum(augmented.values()) / len(augmented)
    out.mkdir(parents=True, exist_ok=True)
    for name, audio in {**augmented, "mixture": mixture}.items():
        sf.write(out / f"{name}.wav", audio, sr)
