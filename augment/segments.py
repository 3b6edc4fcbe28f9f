"""Segment suitability: the source's rule for rejecting silent or sparse stems.

A segment is usable when its overall RMS exceeds `min_rms` and at least `min_active_fraction`
of its `window`-sample windows have RMS above `active_rms` (defaults 0.005, 0.002, 4410, 30%).
Channels are pooled, so a hard-panned stem still counts as active. The same measures describe
every rendered stem in the manifest (`rms_db`, `peak`, `activity`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from augment.config import Suitability


@dataclass(frozen=True)
class Levels:
    rms: float
    peak: float
    activity: float

    @property
    def rms_db(self) -> float:
        return float(20 * np.log10(max(self.rms, 1e-10)))


def levels(audio: np.ndarray, rule: Suitability) -> Levels:
    """RMS, peak and fraction of active windows of (channels, frames) audio."""
    power = np.mean(np.square(audio, dtype=np.float64), axis=0)
    usable = (len(power) // rule.window) * rule.window
    window_rms = np.sqrt(power[:usable].reshape(-1, rule.window).mean(axis=1))
    return Levels(
        rms=float(np.sqrt(power.mean())),
        peak=float(np.abs(audio).max()),
        activity=float(np.mean(window_rms > rule.active_rms)) if usable else 0.0,
    )


def rejection(audio: np.ndarray, rule: Suitability) -> str | None:
    """Why a segment is unusable ('quiet' or 'sparse'), or None when it is usable."""
    measured = levels(audio, rule)
    if measured.rms <= rule.min_rms:
        return "quiet"
    if measured.activity < rule.min_active_fraction:
        return "sparse"
    return None
