"""The render config: effect probabilities and ranges per stem, gains, suitability thresholds.

Defaults reproduce the source project (each effect with p = 0.6; pitch ±2 semitones, stretch
by a duration factor of 0.8–1.2 (> 1 longer), compression threshold 0.3–0.7 of the segment
peak with ratio 2–6, reverb room size and damping 0.2–0.8 at 0.3 wet / 0.7 dry). A TOML
file changes any of it:

    [effects.reverb]            # all stems
    p = 0.3
    [stems.vocals]
    gain_db = [-3, 3]           # uniform range; a single number is a fixed value
    [stems.drums.effects.highpass]
    p = 0.5
    cutoff_hz = [20, 120]
    modes = ["incoherent"]      # only in these modes

The whole config is checked before anything is written; each problem is one ConfigError line.
The resolved config is plain JSON data stored in dataset.json.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from augment.effects import EFFECTS
from augment.errors import ConfigError
from manifests.schema import STEM_NAMES

MODES = ("coherent", "semi-coherent", "incoherent")
STANDARD_ORDER = ("pitch_shift", "time_stretch", "compressor", "reverb")
RUBBER_BAND = ("pitch_shift", "time_stretch")
# Spec-only parameters: drawn, then turned into the named effect field at render time, so
# they are alternatives to it: a table that names one replaces the other it inherits.
SPEC_PARAMS = {"compressor": {"threshold_rel": ("threshold_db", (1e-3, 1.0))}}

DEFAULT_EFFECTS: dict[str, dict[str, Any]] = {
    "pitch_shift": {"p": 0.6, "semitones": [-2.0, 2.0]},
    "time_stretch": {"p": 0.6, "duration_factor": [0.8, 1.2]},
    "compressor": {"p": 0.6, "threshold_rel": [0.3, 0.7], "ratio": [2.0, 6.0]},
    "reverb": {"p": 0.6, "room_size": [0.2, 0.8], "damping": [0.2, 0.8]},
}


@dataclass(frozen=True)
class Suitability:
    """The source's rule for a usable segment, applied per stem before effects."""

    min_rms: float = 0.005
    active_rms: float = 0.002
    window: int = 4410
    min_active_fraction: float = 0.3
    max_attempts: int = 10
    """Offsets tried in one song before another song is drawn."""
    max_tracks: int = 3
    """Songs tried per stem (incoherent) or per item (coherent, semi-coherent), as the
    source's incoherent rule; the source's coherent items kept their last, unsuitable segment
    after `max_attempts` offsets, which msaug does not copy."""


@dataclass(frozen=True)
class EffectSpec:
    """How to draw one effect: probability, uniform ranges, and the modes it applies in."""

    kind: str
    p: float
    ranges: tuple[tuple[str, float, float], ...]
    modes: tuple[str, ...] = MODES

    def draw(self, rng, mode: str) -> dict[str, float] | None:
        """Parameters if the effect is applied, else None.

        The coin and every parameter are always drawn, so one effect's outcome never shifts
        the random stream of the next one.
        """
        coin = rng.random()
        values = {name: float(rng.uniform(low, high)) for name, low, high in self.ranges}
        return values if coin < self.p and mode in self.modes else None


@dataclass(frozen=True)
class RenderConfig:
    """Per-stem effect specs and gains. `shared` holds the `[effects]` specs that coherent mode
    draws once per item for all stems, as the source's coherent mode (`[coherent] share`,
    default every kind in `[effects]`; per-stem overrides of those are used by the other
    modes)."""

    effects: dict[str, tuple[EffectSpec, ...]]
    gain_db: dict[str, tuple[float, float]]
    suitability: Suitability
    shared: tuple[EffectSpec, ...]

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as JSON data (dataset.json `identity.config`)."""
        return {
            "effects": {
                stem: {
                    s.kind: {
                        "p": s.p,
                        **{name: [low, high] for name, low, high in s.ranges},
                        "modes": list(s.modes),
                    }
                    for s in specs
                }
                for stem, specs in self.effects.items()
            },
            "gain_db": {stem: list(r) for stem, r in self.gain_db.items()},
            "shared": {
                s.kind: {"p": s.p, **{n: [lo, hi] for n, lo, hi in s.ranges}} for s in self.shared
            },
            "suitability": dataclasses.asdict(self.suitability),
        }

    def max_rate(self) -> float:
        """The fastest playback rate any stem can draw (1 / the smallest duration factor),
        counting the specs coherent items share: it sets how much source to read."""
        specs = [*(s for specs in self.effects.values() for s in specs), *self.shared]
        rates = [
            1.0 / low
            for s in specs
            if s.kind == "time_stretch" and s.p > 0
            for name, low, _ in s.ranges
            if name == "duration_factor"
        ]
        return max(rates, default=1.0)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def _table(value: Any, where: str) -> dict[str, Any]:
    """A TOML table where one belongs (`effects = 5` is a common slip for `[effects]`)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table ([{where}] with keys below it), got {value!r}")
    return value


GAIN_DB_BOUNDS = (-24.0, 24.0)
"""Per-stem gains beyond this are a typo, not an augmentation: +-24 dB is a factor of 16."""


def _range(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, list):
        if len(value) != 2:
            raise ConfigError(f"{where} must be a number or [low, high], got {value!r}")
        low, high = (_number(v, where) for v in value)
        if low > high:
            raise ConfigError(f"{where} range [{low}, {high}] is inverted; write [low, high]")
        return low, high
    number = _number(value, where)
    return number, number


def _effect_spec(kind: str, table: dict[str, Any], where: str) -> EffectSpec:
    if kind not in EFFECTS:
        raise ConfigError(f"{where}: unknown effect {kind!r}; known effects: {sorted(EFFECTS)}")
    cls = EFFECTS[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    spec_only = SPEC_PARAMS.get(kind, {})
    table = dict(table)
    if "p" not in table:
        raise ConfigError(f"{where}.p is missing; give the probability of applying {kind}")
    p = _number(table.pop("p"), f"{where}.p")
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"{where}.p must be in [0, 1], got {p}")
    modes = table.pop("modes", list(MODES))
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        raise ConfigError(f"{where}.modes must be a list of mode names, got {modes!r}")
    modes = tuple(modes)
    if not set(modes) <= set(MODES):
        raise ConfigError(f"{where}.modes {list(modes)} must be among {list(MODES)}")
    ranges = []
    for name, value in table.items():
        if kind == "time_stretch" and name == "factor":
            raise ConfigError(
                f"{where}.factor was a playback rate (> 1 shorter); msaug now takes "
                "duration_factor (> 1 longer, as the source's factor): write "
                "duration_factor = [1/high, 1/low] for the old rates"
            )
        if name not in fields and name not in spec_only:
            known = sorted(fields | set(spec_only))
            raise ConfigError(
                f"{where}: unknown key {name!r} for {kind}; known: {[*known, 'p', 'modes']}"
            )
        low, high = _range(value, f"{where}.{name}")
        bounds = spec_only[name][1] if name in spec_only else cls.bounds.get(name)
        if bounds and not (bounds[0] <= low and high <= bounds[1]):
            raise ConfigError(f"{where}.{name} [{low}, {high}] is outside {list(bounds)}")
        ranges.append((name, low, high))
    drawn = {name for name, _, _ in ranges}
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
    for name, (replaced, _) in spec_only.items():
        if {name, replaced} <= drawn:
            raise ConfigError(f"{where}: give one of {sorted([name, replaced])}, not both")
        if name in drawn:
            required.discard(replaced)  # resolved at render time (augment.plan.build_effect)
    if required - drawn:
        raise ConfigError(f"{where} is missing {sorted(required - drawn)} for {kind}")
    return EffectSpec(kind=kind, p=p, ranges=tuple(ranges), modes=modes)


def _merge(base: dict[str, Any], override: Any, where: str) -> dict[str, Any]:
    """`override`'s settings over `base`'s. Naming one of two alternative keys (the
    compressor's `threshold_db` or `threshold_rel`) drops the other from `base`, so that an
    absolute threshold in a config is not overruled by the default relative one."""
    merged = copy.deepcopy(base)
    for kind, table in _table(override, where).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}.{kind} must be a table of settings, got {table!r}")
        inherited = dict(merged.get(kind, {}))
        for name, (replaced, _) in SPEC_PARAMS.get(kind, {}).items():
            if {name, replaced} & set(table):
                inherited.pop(name, None)
                inherited.pop(replaced, None)
        merged[kind] = {**inherited, **table}
    return merged


def _coherent_share(table: Any, kinds: list[str]) -> list[str]:
    """`[coherent] share = [...]`: the `[effects]` kinds coherent items draw once for all
    stems (default: all; `["pitch_shift", "time_stretch"]` was msaug's behaviour before)."""
    table = dict(_table(table, "coherent"))
    share = table.pop("share", kinds)
    if table:
        raise ConfigError(f"coherent: unknown key(s) {sorted(table)}; use share")
    if not isinstance(share, list) or not set(share) <= set(kinds):
        raise ConfigError(
            f"coherent.share must be a list of [effects] kinds {kinds}, got {share!r}"
        )
    return share


def _ordered(tables: dict[str, dict[str, Any]]) -> list[str]:
    standard = [k for k in STANDARD_ORDER if k in tables]
    return standard + [k for k in tables if k not in STANDARD_ORDER]


def build_config(data: dict[str, Any]) -> RenderConfig:
    unknown = set(data) - {"effects", "stems", "suitability", "coherent"}
    if unknown:
        raise ConfigError(
            f"unknown config section(s) {sorted(unknown)}; use effects, stems, suitability, "
            "coherent"
        )
    suit_data = _table(data.get("suitability", {}), "suitability")
    suit_fields = {f.name: f for f in dataclasses.fields(Suitability)}
    for key, value in suit_data.items():
        if key not in suit_fields:
            raise ConfigError(f"suitability: unknown key {key!r}; known: {sorted(suit_fields)}")
        if _number(value, f"suitability.{key}") < 0:
            raise ConfigError(f"suitability.{key} must not be negative, got {value}")
        if isinstance(suit_fields[key].default, int) and value != int(value):
            raise ConfigError(f"suitability.{key} must be a whole number, got {value}")
    suitability = Suitability(**{k: type(suit_fields[k].default)(v) for k, v in suit_data.items()})
    if min(suitability.max_attempts, suitability.max_tracks, suitability.window) < 1:
        raise ConfigError("suitability.max_attempts, max_tracks and window must be at least 1")
    common = _merge(DEFAULT_EFFECTS, data.get("effects", {}), "effects")
    # Checked here first so that mistakes in [effects.X] are reported under their own name.
    common_specs = {kind: _effect_spec(kind, common[kind], f"effects.{kind}") for kind in common}
    share = _coherent_share(data.get("coherent", {}), list(_ordered(common)))
    shared = tuple(common_specs[k] for k in _ordered(common) if k in share)
    stems_data = _table(data.get("stems", {}), "stems")
    unknown_stems = set(stems_data) - set(STEM_NAMES)
    if unknown_stems:
        raise ConfigError(f"stems: unknown stem(s) {sorted(unknown_stems)}; use {list(STEM_NAMES)}")
    effects, gains = {}, {}
    for stem in STEM_NAMES:
        stem_data = dict(_table(stems_data.get(stem, {}), f"stems.{stem}"))
        gains[stem] = _range(stem_data.pop("gain_db", 0.0), f"stems.{stem}.gain_db")
        if not (GAIN_DB_BOUNDS[0] <= gains[stem][0] and gains[stem][1] <= GAIN_DB_BOUNDS[1]):
            raise ConfigError(
                f"stems.{stem}.gain_db {list(gains[stem])} is outside {list(GAIN_DB_BOUNDS)} dB"
            )
        where = f"stems.{stem}.effects"
        tables = _merge(common, stem_data.pop("effects", {}), where)
        if stem_data:
            raise ConfigError(
                f"stems.{stem}: unknown key(s) {sorted(stem_data)}; use gain_db, effects"
            )
        effects[stem] = tuple(
            _effect_spec(kind, tables[kind], f"stems.{stem}.effects.{kind}")
            for kind in _ordered(tables)
        )
    return RenderConfig(effects=effects, gain_db=gains, suitability=suitability, shared=shared)


def load_config(path: str | Path | None) -> RenderConfig:
    if path is None:
        return build_config({})
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    return build_config(data)


def parse_mode(text: str) -> dict[str, float]:
    """`incoherent` -> {incoherent: 1}; `mix:coherent=0.3,incoherent=0.7` -> weights."""
    if not text.startswith("mix:"):
        if text not in MODES:
            raise ConfigError(
                f"--mode must be one of {list(MODES)} or mix:MODE=W,..., got {text!r}"
            )
        return {text: 1.0}
    weights = {}
    for part in text[4:].split(","):
        name, _, weight = part.partition("=")
        if name not in MODES:
            raise ConfigError(f"--mode mix: unknown mode {name!r}; use {list(MODES)}")
        try:
            weights[name] = float(weight)
        except ValueError as exc:
            raise ConfigError(
                f"--mode mix: weight of {name} must be a number, got {weight!r}"
            ) from exc
        if weights[name] < 0:
            raise ConfigError(f"--mode mix: weight of {name} must not be negative")
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError("--mode mix: weights must sum to more than 0")
    return {name: w / total for name, w in weights.items()}
