"""One demo track: compose, play the four stems, set their levels, quantise, mix.

The mixture is the sum of the stems as they will be stored (16-bit), so mixture.wav equals
the sum of the stem files sample for sample, as in a rendered dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from augment.demo.compose import compose
from augment.demo.instruments import render_bass, render_drums, render_other, render_vocals
from manifests.files import quantize
from manifests.schema import STEM_NAMES

SUBTYPE = "PCM_16"

PEAKS = {"vocals": (0.25, 0.45), "drums": (0.3, 0.5), "bass": (0.2, 0.4), "other": (0.15, 0.35)}
"""Range of each stem's peak level, like stems of commercial mixes before summing."""

HEADROOM = 0.89
"""Largest mixture peak (-1 dBFS); all stems are scaled together when the sum would exceed it."""


@dataclass(frozen=True)
class DemoTrack:
    name: str
    stems: dict[str, np.ndarray]
    mixture: np.ndarray


def render_track(seed: int, index: int, seconds: float, sample_rate: int) -> DemoTrack:
    """Track `index` of run `seed`; draws only from its own generator, so order and workers
    never change its samples."""
    rng = np.random.default_rng([seed, index])
    frames = round(seconds * sample_rate)
    song = compose(rng, seconds)
    raw = {
        "drums": render_drums(song.drums, rng, sample_rate, frames),
        "bass": render_bass(song.bass, rng, sample_rate, frames),
        "other": render_other(song.pad, song.arp, rng, sample_rate, frames),
        "vocals": render_vocals(song.vocals, song.register, rng, sample_rate, frames),
    }
    levels = {stem: rng.uniform(*PEAKS[stem]) for stem in STEM_NAMES}
    stems = {
        stem: raw[stem] * (levels[stem] / max(np.abs(raw[stem]).max(), 1e-9)) for stem in STEM_NAMES
    }
    scale = min(1.0, HEADROOM / np.abs(sum(stems.values())).max())
    quantized = {stem: quantize(stems[stem] * scale, SUBTYPE) for stem in STEM_NAMES}
    mixture = quantize(sum(quantized.values()), SUBTYPE)
    return DemoTrack(f"Demo {index + 1:02d} - {song.title}", quantized, mixture)
