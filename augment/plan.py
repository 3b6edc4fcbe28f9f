"""Drawing items: mode, sources, offsets and effect chains, from the item's own seed.

Item i draws everything from `SeedSequence([run_seed, i])`, so its output never depends on the
worker count, batching or order. The seed is split into independent streams (mode and shared
pitch/stretch, sources, one per stem's effects), so retrying a silent segment changes where the
audio comes from but never which effects are drawn.

Drawing reads audio (to reject silent segments and to set the compressor threshold from the
segment's peak); the audio read is handed on to rendering, so nothing is read twice.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from augment.chain import source_frames
from augment.config import RUBBER_BAND, RenderConfig
from augment.effects import EFFECTS, Compressor, Effect, as_rendered_by
from augment.segments import rejection
from augment.sources import SourceRoot, Track, read_segment
from manifests.records import ItemRecord, StemRecord
from manifests.schema import STEM_NAMES

_THRESHOLD_FLOOR_DB = -80.0
DRAW_SCHEME = 3
"""Bumped whenever the same (seed, index, config) would draw a different item. Part of the
render identity, so a dataset is never extended by another scheme. 1: schema-1 renders (time
stretch drawn as a playback rate); 2: stretch drawn as a duration factor, as the source;
3: coherent items share their whole chain, up to `max_tracks` songs per stem or item, the
compressor's restoring makeup, reverb levels as amplitudes."""


@dataclass(frozen=True)
class StemPlan:
    """Where one stem's audio comes from and the concrete chain applied to it."""

    stem: str
    track: Track
    start: int
    effects: tuple[Effect, ...]
    gain_db: float


@dataclass(frozen=True)
class ItemPlan:
    index: int
    item_seed: int
    mode: str
    attempts: int
    stems: tuple[StemPlan, ...]


class DrawFailure(Exception):
    """No usable segment was found within the allowed attempts."""

    def __init__(self, index: int, reasons: Counter):
        self.index = index
        self.reasons = reasons
        detail = ", ".join(f"{k} x{v}" for k, v in sorted(reasons.items()))
        super().__init__(f"item {index}: no usable segment ({detail})")


def item_seed(run_seed: int, index: int) -> int:
    """A 63-bit seed for item `index`: stored in the manifest, enough to redraw the item."""
    state = np.random.SeedSequence([run_seed, index]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def build_effect(
    kind: str, values: dict[str, float], segment: np.ndarray, sample_rate: int
) -> Effect:
    """A concrete effect from drawn values and the stem's source segment.

    The compressor's relative threshold becomes dBFS of this segment's peak, which keeps the
    source's thresholds meaningful without its per-stem peak normalisation; without a
    `makeup_db` in the config, its makeup is the gain that gives this segment its RMS back
    (`Compressor.restoring_makeup`). Both are stored in the effect, so a rerender needs no
    audio to know them.
    """
    values = dict(values)
    if kind == "compressor" and "threshold_rel" in values:
        relative = values.pop("threshold_rel")
        level = 20 * math.log10(max(relative * float(np.abs(segment).max()), 1e-10))
        values["threshold_db"] = min(0.0, max(_THRESHOLD_FLOOR_DB, level))
    effect = EFFECTS[kind](**values)
    if isinstance(effect, Compressor) and "makeup_db" not in values:
        effect = replace(effect, makeup_db=effect.restoring_makeup(segment, sample_rate))
    return effect


@dataclass(frozen=True)
class Draft:
    """An item's drawn effect values before its audio is known."""

    mode: str
    effects: dict[str, list[tuple[str, dict[str, float]]]]
    gains: dict[str, float]


def _draw_mode(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = sorted(weights)
    u = rng.random()
    cumulative = np.cumsum([weights[n] for n in names])
    return names[min(int(np.searchsorted(cumulative, u, side="right")), len(names) - 1)]


def _draft(
    seed: int, weights: dict[str, float], config: RenderConfig
) -> tuple[Draft, np.random.Generator]:
    mode_rng, source_rng, *stem_rngs = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2 + len(STEM_NAMES))
    )
    mode = _draw_mode(mode_rng, weights)
    shared = {s.kind: s.draw(mode_rng, mode) for s in config.shared}
    effects, gains = {}, {}
    for stem, rng in zip(STEM_NAMES, stem_rngs, strict=True):
        chain = []
        for spec in config.effects[stem]:
            values = spec.draw(rng, mode)  # always drawn: the stream never depends on the mode
            if mode == "coherent" and spec.kind in shared:
                values = shared[spec.kind]  # one set of values for every stem, as the source
            if values is not None:
                chain.append((spec.kind, values))
        effects[stem] = chain
        low, high = config.gain_db[stem]
        gains[stem] = float(rng.uniform(low, high))
    return Draft(mode, effects, gains), source_rng


def drafted(run_seed: int, index: int, weights: dict[str, float], config: RenderConfig) -> Draft:
    """What item `index` draws before any audio is read: its mode, each stem's effect kinds
    and drawn values, and gains (what a finished item's sidecar must agree with,
    `augment.leftovers`)."""
    return _draft(item_seed(run_seed, index), weights, config)[0]


def _needed_frames(chain: list[tuple[str, dict[str, float]]], frames: int, sr: int) -> int:
    rough = [EFFECTS[k](**v) for k, v in chain if k in RUBBER_BAND]
    return source_frames(rough, frames, sr)


def draw_item(
    index: int,
    run_seed: int,
    weights: dict[str, float],
    config: RenderConfig,
    tracks: list[Track],
    frames: int,
    sample_rate: int,
    rejected: Counter,
) -> tuple[ItemPlan, dict[str, np.ndarray]]:
    """Plan item `index` and return it with the source audio each stem needs.

    Rejected draws are counted into `rejected` by reason; DrawFailure when attempts run out.
    """
    seed = item_seed(run_seed, index)
    draft, rng = _draft(seed, weights, config)
    need = {s: _needed_frames(draft.effects[s], frames, sample_rate) for s in STEM_NAMES}
    rule = config.suitability
    audio: dict[str, np.ndarray] = {}
    chosen: dict[str, tuple[Track, int]] = {}
    attempts, reasons = 0, Counter()
    groups = [list(STEM_NAMES)] if draft.mode != "incoherent" else [[s] for s in STEM_NAMES]
    for group in groups:
        longest = max(need[s] for s in group)
        candidates = [t for t in tracks if t.num_frames >= longest]
        songs = rng.choice(len(candidates), min(rule.max_tracks, len(candidates)), replace=False)
        for song in songs:  # another song after `max_attempts` unusable offsets
            track = candidates[int(song)]
            for _ in range(rule.max_attempts):
                attempts += 1
                start = int(rng.integers(0, track.num_frames - longest + 1))
                segment = {s: read_segment(track, s, start, need[s]) for s in group}
                why = {s: rejection(a, rule) for s, a in segment.items()}
                failed = [f"{s}:{r}" for s, r in why.items() if r is not None]
                if not failed:
                    audio.update(segment)
                    chosen.update({s: (track, start) for s in group})
                    break
                reasons.update(failed)
            if group[0] in chosen:
                break
        else:
            rejected.update(reasons)
            raise DrawFailure(index, reasons)
    rejected.update(reasons)
    stems = tuple(
        StemPlan(
            stem=s,
            track=chosen[s][0],
            start=chosen[s][1],
            effects=tuple(build_effect(k, v, audio[s], sample_rate) for k, v in draft.effects[s]),
            gain_db=draft.gains[s],
        )
        for s in STEM_NAMES
    )
    return ItemPlan(index, seed, draft.mode, attempts, stems), audio


def replay_item(
    item: ItemRecord,
    stem_rows: Mapping[str, StemRecord],
    sources: SourceRoot,
    draw_scheme: int,
    sample_rate: int,
) -> tuple[ItemPlan, dict[str, np.ndarray]]:
    """The plan an item's manifest rows record, with the audio it reads: a draw replayed from
    the rows (`rerender`, `render --recipe`), never redrawn, so it holds for selections too.
    Effects are built as the render's draw scheme built them (`as_rendered_by`)."""
    plans, audio = [], {}
    for stem, row in stem_rows.items():
        track = sources.track(row.source_subset, row.source_track)
        start = round(row.offset_seconds * sample_rate)
        audio[stem] = read_segment(track, stem, start, round(row.duration_seconds * sample_rate))
        effects = tuple(as_rendered_by(Effect.from_dict(d), draw_scheme) for d in row.effects)
        plans.append(StemPlan(stem, track, start, effects, row.gain_db))
    plan = ItemPlan(item.item_index, item.item_seed, item.mode, item.attempts, tuple(plans))
    return plan, audio
