"""The four demo stems as sound: a drum kit, a bass, chords (pad + arpeggio) and a sung voice.

Each renderer takes the notes of `compose` and returns stereo (2, frames) float64 at an
arbitrary level (the track sets stem levels). Sound parameters are drawn per track from the
track's generator, so every track has its own kit, bass tone, chord timbres, voice and room.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from augment.demo.compose import Hit, Note, Syllable
from augment.demo.synth import (
    band_noise,
    envelope,
    harmonic_count,
    hz,
    lowpassed_saw,
    oscillate,
    pan,
    place,
    reverberate,
    room,
    wavetable,
)

Voice = Callable[[Note, np.ndarray], np.ndarray]
"""Sound of one note at times `t` (s) from its onset, before its velocity is applied."""

_VARIANTS = 3
"""Each drum has a few takes with different noise, picked per hit, as a drummer never hits the
same way twice."""

FORMANTS = {
    "low": {
        "a": ((650, 1080, 2650, 2900), (0, -6, -7, -8), (80, 90, 120, 130)),
        "e": ((400, 1700, 2600, 3200), (0, -14, -12, -14), (70, 80, 100, 120)),
        "i": ((290, 1870, 2800, 3250), (0, -15, -18, -20), (40, 90, 100, 120)),
        "o": ((400, 800, 2600, 2800), (0, -10, -12, -12), (40, 80, 100, 120)),
        "u": ((350, 600, 2700, 2900), (0, -20, -17, -14), (40, 60, 100, 120)),
    },
    "high": {
        "a": ((800, 1150, 2900, 3900), (0, -6, -20, -24), (80, 90, 120, 130)),
        "e": ((350, 2000, 2800, 3600), (0, -16, -15, -30), (60, 100, 120, 150)),
        "i": ((270, 2140, 2950, 3900), (0, -12, -20, -26), (60, 90, 100, 120)),
        "o": ((450, 800, 2830, 3800), (0, -11, -22, -22), (70, 80, 100, 130)),
        "u": ((325, 700, 2700, 3800), (0, -16, -30, -36), (50, 60, 170, 180)),
    },
}
"""Vowel formants (centre Hz, level dB, bandwidth Hz) of a lower and a higher voice: the
resonances that make a harmonic tone sound like a sung vowel."""


def _kick(rng: np.random.Generator, sample_rate: int, params: np.ndarray) -> np.ndarray:
    high, low, sweep, decay = params
    t = np.arange(int(0.5 * sample_rate)) / sample_rate
    freq = low + (high - low) * np.exp(-t / sweep)
    body = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate) * np.exp(-t / decay)
    click = band_noise(rng, t.size, sample_rate, 1500.0, 6000.0) * np.exp(-t / 0.004)
    return body + 0.3 * click


def _snare(rng: np.random.Generator, sample_rate: int, params: np.ndarray) -> np.ndarray:
    tone, decay = params
    t = np.arange(int(0.4 * sample_rate)) / sample_rate
    body = np.sin(2 * np.pi * tone * t) + 0.5 * np.sin(2 * np.pi * 1.6 * tone * t)
    wires = band_noise(rng, t.size, sample_rate, 1200.0, min(9000.0, 0.4 * sample_rate))
    return 0.6 * body * np.exp(-t / 0.05) + wires * np.exp(-t / decay)


def _metal(rng: np.random.Generator, sample_rate: int, decay: float, low: float) -> np.ndarray:
    t = np.arange(int(6 * decay * sample_rate)) / sample_rate
    return band_noise(rng, t.size, sample_rate, min(low, 0.35 * sample_rate)) * np.exp(-t / decay)


def drum_kit(rng: np.random.Generator, sample_rate: int) -> dict[str, list[np.ndarray]]:
    """A few takes of kick, snare, closed and open hat and crash, each with peak 1."""
    kick = rng.uniform([110, 42, 0.03, 0.15], [170, 58, 0.06, 0.3])
    snare = rng.uniform([170, 0.08], [220, 0.16])
    hat = rng.uniform(0.02, 0.05)
    makers = {
        "kick": lambda: _kick(rng, sample_rate, kick),
        "snare": lambda: _snare(rng, sample_rate, snare),
        "hat": lambda: _metal(rng, sample_rate, hat, 7000.0),
        "open_hat": lambda: _metal(rng, sample_rate, 0.25, 6000.0),
        "crash": lambda: _metal(rng, sample_rate, 0.6, 4000.0),
    }
    kit = {name: [make() for _ in range(_VARIANTS)] for name, make in makers.items()}
    return {name: [take / np.abs(take).max() for take in takes] for name, takes in kit.items()}


def render_drums(
    hits: tuple[Hit, ...], rng: np.random.Generator, sample_rate: int, frames: int
) -> np.ndarray:
    """Hits onto one track per drum, panned like a kit seen from the audience, in a small room."""
    kit = drum_kit(rng, sample_rate)
    side = float(rng.choice([-1.0, 1.0]))
    mix = {"kick": (1.0, 0.0), "snare": (0.7, -0.1 * side), "hat": (0.3, 0.4 * side)}
    mix |= {"open_hat": (0.25, 0.4 * side), "crash": (0.3, -0.5 * side)}
    takes = rng.integers(_VARIANTS, size=len(hits))
    tracks = {name: np.zeros(frames) for name in kit}
    for hit, take in zip(hits, takes, strict=True):
        place(tracks[hit.drum], round(hit.start * sample_rate), hit.velocity * kit[hit.drum][take])
    stereo = sum(pan(gain * tracks[name], position) for name, (gain, position) in mix.items())
    space = room(rng, sample_rate, rng.uniform(0.3, 0.6), 6000.0)
    return reverberate(stereo, space, rng.uniform(0.05, 0.12))


def _play(
    notes: tuple[Note, ...],
    sample_rate: int,
    frames: int,
    voice: Voice,
    release: float,
) -> np.ndarray:
    """Mono sum of `voice(note, t)` over the notes, each lasting its length plus `release`."""
    out = np.zeros(frames)
    for note in notes:
        t = np.arange(int((note.length + release) * sample_rate)) / sample_rate
        place(out, round(note.start * sample_rate), note.velocity * voice(note, t))
    return out


def render_bass(
    notes: tuple[Note, ...], rng: np.random.Generator, sample_rate: int, frames: int
) -> np.ndarray:
    """A round (few harmonics) or a plucked-saw bass whose brightness falls after each attack."""
    tone = str(rng.choice(["round", "saw"]))
    bright_cut, dark_cut = rng.uniform([1200, 250], [2500, 500])
    fade = rng.uniform(0.06, 0.2)

    def voice(note: Note, t: np.ndarray) -> np.ndarray:
        f0 = float(hz(note.pitch))
        phase = f0 * t
        count = harmonic_count(f0, sample_rate)
        env = envelope(t.size, note.length, sample_rate, 0.005, 0.4, 0.6, 0.04)
        if tone == "round":
            return oscillate(wavetable(np.array([1.0, 0.5, 0.15, 0.08])[:count]), phase) * env
        bright = oscillate(wavetable(lowpassed_saw(count, f0, bright_cut)), phase)
        dark = oscillate(wavetable(lowpassed_saw(count, f0, dark_cut)), phase)
        mix = np.exp(-t / fade)
        return (mix * bright + (1 - mix) * dark) * env

    return pan(_play(notes, sample_rate, frames, voice, 0.04), rng.uniform(-0.1, 0.1))


def _pad_voice(rng: np.random.Generator, sample_rate: int) -> tuple[Voice, float]:
    """Detuned saws with a slow attack ("strings") or drawbar harmonics ("organ")."""
    timbre = str(rng.choice(["strings", "organ"]))
    cutoff = rng.uniform(1200, 3000)
    cents = rng.uniform(4, 10)
    drawbars = np.zeros(8)
    drawbars[[0, 1, 2, 3, 5, 7]] = rng.uniform(0.2, 1.0, size=6) * [1, 1, 0.7, 0.5, 0.4, 0.3]

    def voice(note: Note, t: np.ndarray) -> np.ndarray:
        f0 = float(hz(note.pitch))
        count = harmonic_count(f0 * 1.01, sample_rate)
        if timbre == "organ":
            env = envelope(t.size, note.length, sample_rate, 0.01, 1.0, 1.0, 0.08)
            return oscillate(wavetable(drawbars[:count]), f0 * t) * env
        table = wavetable(lowpassed_saw(count, f0, cutoff))
        detune = 2.0 ** (cents / 1200)
        env = envelope(t.size, note.length, sample_rate, 0.3, 1.0, 0.8, 0.4)
        return (oscillate(table, f0 * detune * t) + oscillate(table, f0 / detune * t + 0.3)) * env

    return voice, 0.4 if timbre == "strings" else 0.08


def _arp_voice(rng: np.random.Generator, sample_rate: int) -> Voice:
    """A plucked string (bright attack dulling fast) or electric-piano-like keys (bell + sine)."""
    timbre = str(rng.choice(["pluck", "keys"]))
    decay = rng.uniform(0.2, 0.5) if timbre == "pluck" else rng.uniform(0.5, 1.0)

    def voice(note: Note, t: np.ndarray) -> np.ndarray:
        f0 = float(hz(note.pitch))
        count = harmonic_count(f0, sample_rate)
        if timbre == "pluck":
            bright = wavetable(lowpassed_saw(count, f0, 5000.0))
            dark = wavetable(lowpassed_saw(count, f0, 800.0, slope=2.0))
        else:
            bright = wavetable(np.array([1.0, 0.4, 0.1, 0.0, 0.0, 0.0, 0.25])[:count])
            dark = wavetable(np.array([1.0, 0.05]))
        mix = np.exp(-t / (0.25 * decay))
        sound = mix * oscillate(bright, f0 * t) + (1 - mix) * oscillate(dark, f0 * t)
        gate = np.clip((note.length + 0.15 - t) / 0.15, 0.0, 1.0)
        return sound * np.exp(-t / decay) * np.minimum(t / 0.003, 1.0) * gate

    return voice


def render_other(
    pad: tuple[Note, ...],
    arp: tuple[Note, ...],
    rng: np.random.Generator,
    sample_rate: int,
    frames: int,
) -> np.ndarray:
    """Pad and arpeggio on opposite sides, sharing a medium room."""
    pad_voice, pad_release = _pad_voice(rng, sample_rate)
    arp_voice = _arp_voice(rng, sample_rate)
    side = float(rng.choice([-1.0, 1.0]))
    chords = pan(0.5 * _play(pad, sample_rate, frames, pad_voice, pad_release), 0.3 * side)
    line = pan(_play(arp, sample_rate, frames, arp_voice, 0.15), -rng.uniform(0.3, 0.6) * side)
    space = room(rng, sample_rate, rng.uniform(1.0, 2.0), 5000.0)
    return reverberate(chords + line, space, rng.uniform(0.15, 0.3))


def _vowel_table(vowel: str, register: str, f0: float, sample_rate: int) -> np.ndarray:
    """Harmonics of a glottal source (falling with frequency) shaped by the vowel's formants."""
    centres, levels, widths = (np.array(v, dtype=float) for v in FORMANTS[register][vowel])
    k = np.arange(1, harmonic_count(f0 * 1.06, sample_rate) + 1)
    offsets = (k[:, None] * f0 - centres) / (widths / 2)
    resonance = np.sum(10 ** (levels / 20) / np.sqrt(1 + offsets**2), axis=1)
    return wavetable((0.02 + resonance) / k)


def _drift(rng: np.random.Generator, t: np.ndarray, cents: float) -> np.ndarray:
    """Slow random pitch wander in semitones: no singer holds a pitch dead still."""
    knots = np.arange(0.0, t[-1] + 0.1, 0.05)
    return np.interp(t, knots, rng.normal(0.0, cents / 100, knots.size))


def render_vocals(
    syllables: tuple[Syllable, ...],
    register: str,
    rng: np.random.Generator,
    sample_rate: int,
    frames: int,
) -> np.ndarray:
    """A voice singing vowels, gliding between legato notes, with delayed vibrato and breath.

    Consonant-like noise bursts start some syllables, so the stem is not only harmonic tones.
    """
    rate, depth = rng.uniform([5.0, 0.2], [6.5, 0.5])
    glide = rng.uniform(0.015, 0.035)
    consonants = [band_noise(rng, int(0.04 * sample_rate), sample_rate, 2500.0) for _ in "abc"]
    out = np.zeros(frames)
    previous = None
    for syllable in syllables:
        note = syllable.note
        t = np.arange(int((note.length + 0.1) * sample_rate)) / sample_rate
        pitch = np.full(t.size, float(note.pitch))
        if previous is not None and note.start - (previous.start + previous.length) < 0.1:
            pitch += (previous.pitch - note.pitch) * np.exp(-t / glide)
        onset = np.clip((t - 0.15) / 0.2, 0.0, 1.0)
        pitch += depth * onset * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
        pitch += _drift(rng, t, cents=5.0)
        f0 = hz(pitch)
        table = _vowel_table(syllable.vowel, register, float(hz(note.pitch)), sample_rate)
        env = envelope(t.size, note.length, sample_rate, 0.05, 0.3, 0.85, 0.08)
        tone = oscillate(table, np.cumsum(f0) / sample_rate)
        breath = 0.03 * band_noise(rng, t.size, sample_rate, 500.0, 6000.0)
        start = round(note.start * sample_rate)
        place(out, start, note.velocity * (tone + breath) * env)
        if rng.random() < 0.4:
            burst = consonants[int(rng.integers(len(consonants)))]
            shape = np.exp(-np.arange(burst.size) / (0.012 * sample_rate))
            place(out, max(start - burst.size // 2, 0), 0.25 * note.velocity * burst * shape)
        previous = note
    space = room(rng, sample_rate, rng.uniform(1.2, 2.2), 7000.0)
    return reverberate(pan(out, rng.uniform(-0.1, 0.1)), space, rng.uniform(0.15, 0.3))
