"""Concrete effects: frozen records of the values actually used, and how to render them.

An effect never draws random numbers; `augment.config` draws it, the manifest stores it
(`to_dict`: `{"kind": ..., "params": {...}}`, the shape of the `effects` column), and
`from_dict` rebuilds it for `msaug rerender`. Each registers under a stable `kind` string, so
renaming a class never breaks old manifests, and the registry declares the typed manifest
columns of every kind (`effect_columns`). pedalboard plugins are built inside the worker at
render time (they cannot be pickled).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pedalboard

EFFECTS: dict[str, type[Effect]] = {}


def _check(effect: Effect, name: str, low: float, high: float) -> None:
    value = getattr(effect, name)
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{effect.kind}.{name} must be in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class Effect:
    """Base of all effects; subclasses declare `kind`, `bounds` and `plugin`."""

    kind: ClassVar[str]
    bounds: ClassVar[dict[str, tuple[float, float]]] = {}

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if register:
            EFFECTS[cls.kind] = cls

    def __post_init__(self) -> None:
        for name, (low, high) in self.bounds.items():
            _check(self, name, low, high)

    def to_dict(self) -> dict[str, Any]:
        params = {k: float(v) for k, v in dataclasses.asdict(self).items()}
        return {"kind": self.kind, "params": params}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Effect:
        kind = data.get("kind")
        if kind not in EFFECTS:
            raise ValueError(f"unknown effect kind {kind!r}; known: {sorted(EFFECTS)}")
        cls = EFFECTS[kind]
        names = {f.name for f in dataclasses.fields(cls)}
        params = dict(data.get("params", {}))
        if set(params) - names:
            raise ValueError(f"{kind} has no parameters {sorted(set(params) - names)}")
        return cls(**params)

    def plugin(self) -> pedalboard.Plugin:
        raise NotImplementedError(f"{self.kind} is rendered by augment.stretch, not pedalboard")

    def process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """(channels, n) float32 audio through this effect, with no state from earlier calls."""
        return self.plugin()(audio, float(sample_rate), reset=True)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


@dataclass(frozen=True)
class PitchShift(Effect):
    """Rubber Band pitch shift; rendered together with TimeStretch in one call."""

    kind: ClassVar[str] = "pitch_shift"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {"semitones": (-24.0, 24.0)}
    semitones: float


@dataclass(frozen=True)
class TimeStretch(Effect):
    """Rubber Band time stretch by a duration factor: > 1 is longer (slower), as the source's
    `factor` (it called librosa with `rate = 1 / factor`). Rubber Band gets the rate."""

    kind: ClassVar[str] = "time_stretch"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {"duration_factor": (0.25, 4.0)}
    duration_factor: float


@dataclass(frozen=True)
class Compressor(Effect):
    """pedalboard's Compressor, then `makeup_db` of gain. `threshold_db` is absolute (dBFS),
    as rendered. A compressor only takes level away (1.1 dB of RMS on average at the default
    ranges, up to 3.7 dB), which would make compressed stems systematically quieter and
    loudness a cue for the flag; `augment.plan.build_effect` sets the makeup that gives the
    segment its RMS back unless the config fixes one (docs/effects.md)."""

    kind: ClassVar[str] = "compressor"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        "threshold_db": (-80.0, 0.0),
        "ratio": (1.0, 100.0),
        "attack_ms": (0.0, 1000.0),
        "release_ms": (0.0, 5000.0),
        "makeup_db": (0.0, 24.0),
    }
    threshold_db: float
    ratio: float
    attack_ms: float = 1.0
    release_ms: float = 100.0
    makeup_db: float = 0.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Compressor(
            threshold_db=self.threshold_db,
            ratio=self.ratio,
            attack_ms=self.attack_ms,
            release_ms=self.release_ms,
        )

    def process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        out = self.plugin()(audio, float(sample_rate), reset=True)
        return out * np.float32(10 ** (self.makeup_db / 20)) if self.makeup_db else out

    def restoring_makeup(self, audio: np.ndarray, sample_rate: int) -> float:
        """The makeup gain (dB, within bounds) that gives `audio` its RMS back."""
        before, after = rms(audio), rms(self.plugin()(audio, float(sample_rate), reset=True))
        if before == 0 or after == 0:
            return 0.0
        return min(max(20 * math.log10(before / after), 0.0), self.bounds["makeup_db"][1])


SOURCE_DRY, SOURCE_WET = 0.7, 0.3
"""The source's reverb mix: 0.7 dry + 0.3 wet."""
WET_NORM = math.sqrt(1 - SOURCE_DRY**2) / SOURCE_WET
"""RMS of the wet path relative to the input (~2.38): the source's mix then keeps the stem's
power, whatever the room (docs/effects.md has the measurements)."""


@dataclass(frozen=True)
class Reverb(Effect):
    """Freeverb (pedalboard's Reverb) mixed as `dry_level * x + wet_level * wet(x)`.

    Levels are amplitudes, as in the source. pedalboard itself scales its dry path by 2 and its
    wet path by 3 (JUCE's Freeverb), so its `dry_level = 0.7` is +3 dB, and its wet level
    depends on the room (0.39 to 0.64 of the input RMS on noise). Here the wet path alone is
    rendered and scaled to `WET_NORM` times the input's RMS, so the source's 0.7 / 0.3 mix
    keeps the stem's level and `dry_level = 1, wet_level = 0` is the input itself.
    """

    kind: ClassVar[str] = "reverb"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        "room_size": (0.0, 1.0),
        "damping": (0.0, 1.0),
        "wet_level": (0.0, 1.0),
        "dry_level": (0.0, 1.0),
        "width": (0.0, 1.0),
    }
    room_size: float
    damping: float
    wet_level: float = 0.3
    dry_level: float = 0.7
    width: float = 1.0

    def plugin(self) -> pedalboard.Plugin:
        """The wet path only, at pedalboard's own level (scaled in `process`)."""
        return pedalboard.Reverb(
            room_size=self.room_size,
            damping=self.damping,
            wet_level=1.0,
            dry_level=0.0,
            width=self.width,
        )

    def process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        out = audio * np.float32(self.dry_level)
        if self.wet_level == 0:
            return out
        wet = self.plugin()(audio, float(sample_rate), reset=True)
        level = rms(wet)
        if level > 0:
            out += wet * np.float32(self.wet_level * WET_NORM * rms(audio) / level)
        return out


@dataclass(frozen=True)
class PedalboardReverb(Reverb, register=False):
    """Reverb as draw schemes 1 and 2 rendered it: pedalboard's own levels (dry path x2, wet
    path x3, so the source's 0.7 / 0.3 came out about 3 dB loud). Never drawn; `msaug rerender`
    uses it for rows of those schemes, which must rebuild their bytes."""

    def process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        plugin = pedalboard.Reverb(
            room_size=self.room_size,
            damping=self.damping,
            wet_level=self.wet_level,
            dry_level=self.dry_level,
            width=self.width,
        )
        return plugin(audio, float(sample_rate), reset=True)


def as_rendered_by(effect: Effect, draw_scheme: int) -> Effect:
    """`effect` as a render of `draw_scheme` rendered it (rows of older schemes keep their
    meaning: only reverb levels changed, in scheme 3)."""
    if draw_scheme < 3 and type(effect) is Reverb:
        return PedalboardReverb(**dataclasses.asdict(effect))
    return effect


@dataclass(frozen=True)
class Gain(Effect):
    kind: ClassVar[str] = "gain"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {"gain_db": (-60.0, 24.0)}
    gain_db: float

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Gain(gain_db=self.gain_db)


@dataclass(frozen=True)
class HighpassFilter(Effect):
    kind: ClassVar[str] = "highpass"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {"cutoff_hz": (10.0, 20000.0)}
    cutoff_hz: float

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.HighpassFilter(cutoff_frequency_hz=self.cutoff_hz)


@dataclass(frozen=True)
class LowpassFilter(Effect):
    kind: ClassVar[str] = "lowpass"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {"cutoff_hz": (10.0, 20000.0)}
    cutoff_hz: float

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.LowpassFilter(cutoff_frequency_hz=self.cutoff_hz)


@dataclass(frozen=True)
class PeakEQ(Effect):
    """One parametric EQ band (pedalboard's PeakFilter)."""

    kind: ClassVar[str] = "peak_eq"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        "cutoff_hz": (20.0, 20000.0),
        "gain_db": (-24.0, 24.0),
        "q": (0.1, 10.0),
    }
    cutoff_hz: float
    gain_db: float
    q: float = 0.707

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.PeakFilter(
            cutoff_frequency_hz=self.cutoff_hz, gain_db=self.gain_db, q=self.q
        )


@dataclass(frozen=True)
class Distortion(Effect):
    kind: ClassVar[str] = "distortion"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {"drive_db": (0.0, 60.0)}
    drive_db: float

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Distortion(drive_db=self.drive_db)


@dataclass(frozen=True)
class Chorus(Effect):
    kind: ClassVar[str] = "chorus"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        "rate_hz": (0.01, 20.0),
        "depth": (0.0, 1.0),
        "mix": (0.0, 1.0),
    }
    rate_hz: float
    depth: float = 0.25
    mix: float = 0.5

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Chorus(rate_hz=self.rate_hz, depth=self.depth, mix=self.mix)


@dataclass(frozen=True)
class Mp3Codec(Effect):
    """LAME MP3 round trip: codec artefacts (VBR quality 0 best .. 10 worst)."""

    kind: ClassVar[str] = "mp3"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {"vbr_quality": (0.0, 10.0)}
    vbr_quality: float

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.MP3Compressor(vbr_quality=self.vbr_quality)


def effect_columns() -> dict[str, list[str]]:
    """The typed manifest columns of every registered effect: `<kind>_applied` and one
    `<kind>_<param>` per parameter. Declared for all kinds, not the ones a config uses, so the
    tables of every render of one msaug release have the same schema."""
    return {kind: [f.name for f in dataclasses.fields(cls)] for kind, cls in EFFECTS.items()}
