"""Rendering an ordered chain of concrete effects on one stem.

Pitch shift and time stretch are fused into one Rubber Band call wherever they sit in the chain
(they always come first in drawn chains); every other effect runs in one pedalboard
`Pedalboard` with `reset=True`, so no tail leaks from one stem into the next.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pedalboard

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
    if rb is not None:
        audio = pitch_stretch(audio, sample_rate, rb[0], rb[1], frames, backend, quality)
    others = [e.plugin() for e in effects if not isinstance(e, (PitchShift, TimeStretch))]
    if others:
        audio = pedalboard.Pedalboard(others)(audio, float(sample_rate), reset=True)
    return np.ascontiguousarray(audio[:, :frames], dtype=np.float32)
