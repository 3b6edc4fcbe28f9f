"""Online augmentation: the cheap tricks every peer trainer uses, on top of rendered items.

Demucs, Open-Unmix and MSST draw, per training crop, a random gain per source, swap the
channels, flip the polarity, and remix sources across songs. Heavy DSP (pitch, tempo,
compression, reverb) is rendered offline by msaug; these four cost nothing but reads, so the
hybrid gets both: an endless stream of new mixtures out of a finite set of rendered items.

Every draw comes from (seed, epoch, crop index) through its own stream, so a crop is the same at
any `--workers` and after `--resume`, and switching augmentation on never moves the offsets the
plain crops use. The mixture is rebuilt as the sum of the augmented stems, so it stays the sum
of the sources a batch returns (all four when the model learns all four).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf

_STREAM = 1
"""Tag of the augmentation stream in the crop's seed ([seed, epoch, index, _STREAM])."""


@dataclass(frozen=True)
class OnlineAugment:
    """Which augmentations are on. `gain` is a linear range (Demucs and Open-Unmix use
    0.25..1.25); the others are coin flips with p = 0.5 per stem."""

    gain: tuple[float, float] | None = None
    channel_swap: bool = False
    polarity_flip: bool = False
    remix: bool = False

    @classmethod
    def of(cls, data: Any) -> OnlineAugment:
        """The augmentations a `DataConfig` turns on."""
        gain = tuple(data.gain) if data.gain else None
        return cls(gain, data.channel_swap, data.polarity_flip, data.remix)  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        return bool(self.gain) or self.channel_swap or self.polarity_flip or self.remix


class StemDraw(NamedTuple):
    """Where one stem of an augmented crop comes from and what is done to it."""

    item: int
    start: int
    gain: float
    swap: bool
    flip: bool


def draw_stems(
    augment: OnlineAugment,
    seed: int,
    epoch: int,
    index: int,
    primary: tuple[int, int],
    n_stems: int,
    item_frames: list[int],
    need: int,
) -> list[StemDraw]:
    """One draw per stem. The first stem keeps the crop's own item and offset (`primary`);
    with `remix`, every other stem takes a random item and offset of its own."""
    rng = np.random.default_rng([seed, epoch, index, _STREAM])
    draws = []
    for stem in range(n_stems):
        other = int(rng.integers(len(item_frames)))
        offset = int(rng.integers(0, max(item_frames[other] - need, 0) + 1))
        gain = float(rng.uniform(*augment.gain)) if augment.gain else 1.0
        swap, flip = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        item, start = (other, offset) if augment.remix and stem > 0 else primary
        draws.append(
            StemDraw(
                item, start, gain, swap and augment.channel_swap, flip and augment.polarity_flip
            )
        )
    return draws


def read_stem(path: str, start: int, frames: int, channels: int) -> np.ndarray:
    """(frames, channels) float32 of one stem file; frames past its end are zeros."""
    out = np.zeros((frames, channels), dtype=np.float32)
    data, _ = sf.read(path, start=start, stop=start + frames, dtype="float32", always_2d=True)
    out[: len(data)] = data
    return out


def apply(draw: StemDraw, audio: np.ndarray) -> np.ndarray:
    """The draw's gain, swap and flip on (frames, channels) audio."""
    if draw.swap and audio.shape[1] == 2:
        audio = audio[:, ::-1]
    factor = -draw.gain if draw.flip else draw.gain
    return audio * np.float32(factor) if factor != 1.0 else audio
