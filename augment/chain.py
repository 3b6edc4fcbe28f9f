"""Rendering an ordered chain of concrete effects on one stem.

Pitch shift and time stretch are fused into one Rubber Band call wherever they sit in the chain
(they always come first in drawn chains), skipped when they cancel out (no shift, duration
factor 1: the input is then passed on bit for bit); every other effect runs in order through
its own `process`, with its state reset, so no tail leaks from one stem into the next.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from augment.effects import Effect, PitchShift, TimeStretch
from augment.stretch import frames_to_read, pitch_stretch


def _rubber_band(effects: Sequence[Effect]) -> tuple[float, float] | None:
    """(semitones, rate) of the chain's pitch/stretch effects, or None if it has none. The
    rate is Rubber Band's (> 1 shorter): the reciprocal of the total duration factor."""
    pitch = [e.semitones for e in effects if isinstance(e, PitchShift)]
    stretch = [e.duration_factor for e in effects if isinstance(e, TimeStretch)]
    if not pitch and not stretch:
        return None
    return float(sum(pitch)), 1.0 / float(math.prod(stretch))


def source_frames(effects: Sequence[Effect], frames: int, sample_rate: int) -> int:
    """How many source frames the chain needs to produce exactly `frames` frames."""
    rb = _rubber_band(effects)
    return frames if rb is None else frames_to_read(frames, rb[1], sample_rate)


def apply_chain(
    audio: np.ndarray,
    sample_rate: int,
    effects: Sequence[Effect],
    frames: int,
    backend: str,
    quality: str,
) -> np.ndarray:
    """Render `effects` on (channels, n) audio read with `source_frames`; return `frames` frames."""
    rb = _rubber_band(effects)
    if rb is not None and rb != (0.0, 1.0):
        audio = pitch_stretch(audio, sample_rate, rb[0], rb[1], frames, backend, quality)
    audio = np.ascontiguousarray(audio[:, :frames], dtype=np.float32)
    for effect in effects:
        if not isinstance(effect, (PitchShift, TimeStretch)):
            audio = effect.process(audio, sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)
