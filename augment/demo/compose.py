"""The musical plan of a demo track: tempo, key, chords, arrangement and every note.

A separation model learns from what real music has and noise lacks: stems that share one beat
and one harmony, instruments with stable timbres, and sections where a stem stops. The plan is
pure data (times in seconds, pitches as MIDI numbers), so the sound design in `instruments`
can change without changing what is played, and every choice comes from the track's generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)

PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 5)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2)),
}
"""Common four-chord loops as 0-based scale degrees (I-V-vi-IV is (0, 4, 5, 3))."""


@dataclass(frozen=True)
class Groove:
    """One bar of drums on a 16-step grid."""

    kick: tuple[int, ...]
    snare: tuple[int, ...]
    hat: tuple[int, ...]
    open_hat: tuple[int, ...] = ()


GROOVES = {
    "Backbeat": Groove(kick=(0, 8, 10), snare=(4, 12), hat=(0, 2, 4, 6, 8, 10, 12, 14)),
    "Disco": Groove(kick=(0, 4, 8, 12), snare=(4, 12), hat=(0, 4, 8, 12), open_hat=(2, 6, 10, 14)),
    "Halftime": Groove(kick=(0, 3, 10), snare=(8,), hat=tuple(range(16))),
    "Breakbeat": Groove(kick=(0, 2, 10), snare=(4, 9, 12), hat=(0, 2, 4, 6, 8, 10, 12, 14)),
    "Shuffle": Groove(kick=(0, 7, 8), snare=(4, 12), hat=(0, 3, 4, 7, 8, 11, 12, 15)),
}

BASS_PATTERNS = {
    "quarters": ((0, 4, 0), (4, 4, 0), (8, 4, 0), (12, 4, 0)),
    "eighths": tuple((step, 2, 12 if step in (6, 14) else 0) for step in range(0, 16, 2)),
    "root-fifth": ((0, 6, 0), (6, 2, 0), (8, 6, 7), (14, 2, 12)),
    "syncopated": ((0, 3, 0), (3, 3, 0), (6, 2, 7), (8, 3, 0), (11, 3, 0), (14, 2, 12)),
}
"""(16th step, length in steps, semitones above the chord root) for one bar."""

REGISTERS = {"low": 48, "high": 57}
"""Lowest tonic (MIDI) of a lower and a higher voice; a melody spans a third below its tonic
to an octave above."""

VOWELS = ("a", "e", "i", "o", "u")
_VOWEL_WEIGHTS = (0.3, 0.2, 0.15, 0.25, 0.1)


@dataclass(frozen=True)
class Arrangement:
    """Which parts play in a section; `drums` is "full", "hats" or "off"."""

    drums: str
    bass: bool
    arp: bool
    vocals: bool
    energy: float


@dataclass(frozen=True)
class Note:
    start: float
    length: float
    pitch: float
    velocity: float


@dataclass(frozen=True)
class Hit:
    start: float
    drum: str
    velocity: float


@dataclass(frozen=True)
class Syllable:
    note: Note
    vowel: str


@dataclass(frozen=True)
class Song:
    title: str
    bpm: float
    key: int
    mode: str
    register: str
    sections: tuple[str, ...]
    drums: tuple[Hit, ...]
    bass: tuple[Note, ...]
    pad: tuple[Note, ...]
    arp: tuple[Note, ...]
    vocals: tuple[Syllable, ...]


@dataclass(frozen=True)
class _Grid:
    """Bar and step durations; `swing` delays odd 16ths by that fraction of a step."""

    bar: float
    swing: float

    @property
    def step(self) -> float:
        return self.bar / 16

    def time(self, bar: int, step: float) -> float:
        return bar * self.bar + (step + self.swing * (int(step) % 2)) * self.step


def sections(rng: np.random.Generator, n_bars: int, bar_seconds: float) -> tuple[str, ...]:
    """Section label per bar, with an intro of at least 2 s (as the bars allow).

    Intros, breaks and outros are long enough that some 10 s segments hold a stem for less
    than 30% of their length, so a render's silence filter meets both outcomes.
    """
    share = rng.uniform([0.15, 0.1, 0.05], [0.3, 0.2, 0.15])
    intro = min(n_bars - 1, max(math.ceil(2.0 / bar_seconds), round(share[0] * n_bars)))
    pause = round(share[1] * n_bars) if n_bars >= 8 else 0
    outro = round(share[2] * n_bars) if n_bars >= 10 else 0
    body = n_bars - intro - outro - pause
    verse = body // 2
    labels = ["intro"] * intro + ["verse"] * verse + ["break"] * pause
    return (*labels, *["chorus"] * (body - verse), *["outro"] * outro)


def _arrangements(rng: np.random.Generator) -> dict[str, Arrangement]:
    """Drums stop in the break, vocals rest in the intro and outro; the rest varies per track."""

    def coin() -> bool:
        return bool(rng.random() < 0.5)

    return {
        "intro": Arrangement(str(rng.choice(["off", "hats"])), coin(), False, False, 0.8),
        "verse": Arrangement("full", True, coin(), True, 0.9),
        "break": Arrangement("off", coin(), True, bool(rng.random() < 0.3), 0.85),
        "chorus": Arrangement("full", True, True, True, 1.0),
        "outro": Arrangement(str(rng.choice(["off", "full"])), True, coin(), False, 0.8),
    }


_Labels = tuple[str, ...]
_Parts = dict[str, Arrangement]
_Chords = list[tuple[int, ...]]


def _chord(key: int, scale: tuple[int, ...], degree: int, size: int) -> tuple[int, ...]:
    """Pitch classes of the diatonic chord on `degree` (triad, or seventh chord for size 4)."""
    return tuple((key + scale[(degree + 2 * i) % 7]) % 12 for i in range(size))


def _in_range(pitch_class: int, low: int) -> int:
    return low + (pitch_class - low) % 12


def compose(rng: np.random.Generator, seconds: float) -> Song:
    """Draw a song that fills `seconds`; the last bar may run past the end and is cut there."""
    bpm = float(rng.uniform(80, 140))
    key = int(rng.integers(12))
    mode = str(rng.choice(["major", "minor"]))
    scale = MAJOR if mode == "major" else MINOR
    groove_name = str(rng.choice(list(GROOVES)))
    grid = _Grid(
        bar=4 * 60 / bpm, swing=float(rng.uniform(0.15, 0.3)) if groove_name == "Shuffle" else 0.0
    )
    labels = sections(rng, math.ceil(seconds / grid.bar), grid.bar)
    parts = _arrangements(rng)
    verse_loop, chorus_loop = (
        PROGRESSIONS[mode][i] for i in rng.integers(len(PROGRESSIONS[mode]), size=2)
    )
    chord_size = int(rng.choice([3, 4]))
    degrees = []
    for bar, label in enumerate(labels):
        loop = chorus_loop if label in ("chorus", "break") else verse_loop
        degrees.append(loop[(bar - labels.index(label)) % 4])
    chords = [_chord(key, scale, degree, chord_size) for degree in degrees]
    register = str(rng.choice(list(REGISTERS)))
    return Song(
        title=f"{mode.capitalize()} {groove_name}",
        bpm=bpm,
        key=key,
        mode=mode,
        register=register,
        sections=labels,
        drums=_drums(rng, grid, GROOVES[groove_name], labels, parts),
        bass=_bass(rng, grid, chords, labels, parts),
        pad=_pad(grid, chords, labels, parts),
        arp=_arp(rng, grid, chords, labels, parts),
        vocals=_melody(
            rng, grid, _in_range(key, REGISTERS[register]), scale, degrees, labels, parts
        ),
    )


def _drums(
    rng: np.random.Generator, grid: _Grid, groove: Groove, labels: _Labels, parts: _Parts
) -> tuple[Hit, ...]:
    """The groove with accents, ghost snares, extra kicks, fills into sections and crashes."""
    hits = []
    for bar, label in enumerate(labels):
        style, energy = parts[label].drums, parts[label].energy
        if style == "off":
            continue
        last_of_section = bar + 1 == len(labels) or labels[bar + 1] != label
        fill = style == "full" and last_of_section and bar + 1 < len(labels)
        notes: list[tuple[int, str, float]] = [
            (s, "hat", (1.0 if s % 4 == 0 else 0.7) * rng.uniform(0.8, 1.0))
            for s in groove.hat
            if not (fill and s >= 12)
        ]
        notes += [(s, "open_hat", rng.uniform(0.7, 0.9)) for s in groove.open_hat]
        if style == "full":
            notes += [(s, "kick", rng.uniform(0.85, 1.0)) for s in groove.kick]
            notes += [
                (s, "snare", rng.uniform(0.85, 1.0)) for s in groove.snare if s < 12 or not fill
            ]
            free = [s for s in range(16) if s not in groove.kick + groove.snare]
            notes += [(s, "snare", rng.uniform(0.15, 0.3)) for s in free if rng.random() < 0.08]
            if rng.random() < 0.25:
                notes.append((int(rng.choice([s for s in free if s % 2 == 0])), "kick", 0.7))
            if fill:
                notes += [(12 + i, "snare", 0.55 + 0.15 * i) for i in range(4)]
            if bar == labels.index(label) and (
                label == "chorus" or bar == 0 or parts[labels[bar - 1]].drums != "full"
            ):
                notes.append((0, "crash", 0.9))
        for step, drum, velocity in notes:
            start = grid.time(bar, step) + rng.normal(0.0, 0.003)
            hits.append(Hit(max(start, 0.0), drum, float(velocity * energy)))
    return tuple(sorted(hits, key=lambda hit: hit.start))


def _bass(
    rng: np.random.Generator, grid: _Grid, chords: _Chords, labels: _Labels, parts: _Parts
) -> tuple[Note, ...]:
    """A per-track pattern on the chord roots, from E1 up, with a staccato feel."""
    pattern = BASS_PATTERNS[str(rng.choice(list(BASS_PATTERNS)))]
    notes = []
    for bar, label in enumerate(labels):
        if not parts[label].bass:
            continue
        root = _in_range(chords[bar][0], 28)
        for step, length, interval in pattern:
            accent = 1.0 if step % 4 == 0 else 0.85
            velocity = accent * rng.uniform(0.85, 1.0) * parts[label].energy
            notes.append(
                Note(grid.time(bar, step), 0.85 * length * grid.step, root + interval, velocity)
            )
    return tuple(notes)


def _pad(grid: _Grid, chords: _Chords, labels: _Labels, parts: _Parts) -> tuple[Note, ...]:
    """Whole-bar chords in close position around middle C, so voices move by small steps."""
    return tuple(
        Note(bar * grid.bar, grid.bar, _in_range(pc, 54), 0.8 * parts[label].energy)
        for bar, label in enumerate(labels)
        for pc in chords[bar]
    )


def _arp(
    rng: np.random.Generator, grid: _Grid, chords: _Chords, labels: _Labels, parts: _Parts
) -> tuple[Note, ...]:
    """Chord tones an octave above the pad, in 8ths or 16ths, going up, up-down or shuffled."""
    steps = int(rng.choice([2, 4]))
    order = str(rng.choice(["up", "updown", "shuffle"]))
    notes = []
    for bar, label in enumerate(labels):
        if not parts[label].arp:
            continue
        tones = sorted(_in_range(pc, 66) for pc in chords[bar])
        tones.append(tones[0] + 12)
        if order == "updown":
            tones += tones[-2:0:-1]
        elif order == "shuffle":
            tones = list(rng.permutation(tones))
        for i, step in enumerate(range(0, 16, steps)):
            velocity = (
                (1.0 if step % 8 == 0 else 0.8) * rng.uniform(0.85, 1.0) * parts[label].energy
            )
            notes.append(
                Note(grid.time(bar, step), steps * grid.step, tones[i % len(tones)], velocity)
            )
    return tuple(notes)


def _rhythm(rng: np.random.Generator, eighths: int) -> tuple[tuple[int, int], ...]:
    """(onset, length) in 8ths for a phrase, ending with a rest of a beat or more."""
    rest = int(rng.choice([2, 3, 4])) if eighths > 8 else 2
    at, notes = int(rng.choice([0, 0, 1])), []
    while at < eighths - rest:
        length = min(int(rng.choice([1, 2, 2, 3, 4])), eighths - rest - at)
        notes.append((at, length))
        at += length
    return tuple(notes)


def _walk(rng: np.random.Generator, count: int) -> list[int]:
    """Scale degrees moving mostly by steps, turned back at the edges of the range (-2..7)."""
    degree, line = int(rng.integers(0, 5)), []
    for _ in range(count):
        line.append(degree)
        step = int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
        degree += step if -2 <= degree + step <= 7 else -step
    return line


def _snap(degree: int, chord_degree: int) -> int:
    """The chord tone (in scale degrees) nearest to `degree`."""
    tones = [d for d in range(degree - 3, degree + 4) if (d - chord_degree) % 7 in (0, 2, 4)]
    return min(tones, key=lambda d: (abs(d - degree), d))


def _melody(
    rng: np.random.Generator,
    grid: _Grid,
    tonic: int,
    scale: tuple[int, ...],
    degrees: list[int],
    labels: _Labels,
    parts: _Parts,
) -> tuple[Syllable, ...]:
    """Two-bar phrases with rests between them; each section repeats its own motif.

    Notes on beats 1 and 3 land on chord tones, the others walk the scale, so the line fits the
    harmony; repeating the motif gives the melody the repetition real songs have.
    """
    motifs: dict[tuple[str, int], tuple[tuple[tuple[int, int], ...], list[int]]] = {}
    syllables = []
    bar = 0
    while bar < len(labels):
        label = labels[bar]
        span = 2 if bar + 1 < len(labels) and labels[bar + 1] == label else 1
        if not parts[label].vocals:
            bar += span
            continue
        if (label, span) not in motifs:
            rhythm = _rhythm(rng, 8 * span)
            motifs[label, span] = (rhythm, _walk(rng, len(rhythm)))
        rhythm, line = motifs[label, span]
        if rng.random() < 0.3:
            line = list(line)
            line[int(rng.integers(len(line)))] += int(rng.choice([-1, 1]))
        for (onset, length), degree in zip(rhythm, line, strict=True):
            chord_degree = degrees[bar + onset // 8]
            if onset % 4 == 0:
                degree = _snap(int(degree), chord_degree)
            degree = int(np.clip(degree, -2, 7))
            pitch = tonic + 12 * (degree // 7) + scale[degree % 7]
            start = bar * grid.bar + onset * grid.bar / 8
            velocity = rng.uniform(0.8, 1.0) * parts[label].energy
            note = Note(start, 0.95 * length * grid.bar / 8, pitch, velocity)
            syllables.append(Syllable(note, str(rng.choice(VOWELS, p=_VOWEL_WEIGHTS))))
        bar += span
    return tuple(syllables)
