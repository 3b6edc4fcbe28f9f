"""Vectorised building blocks for the demo instruments: tables, envelopes, noise, pan, room.

Pitched sounds play band-limited wavetables (one cycle built from harmonics below Nyquist), so
they stay clean at any sample rate and cost a table lookup per sample whatever the timbre.
Everything works on whole arrays; the only Python loops are over notes.
"""

from __future__ import annotations

import numpy as np

TABLE_SIZE = 2048


def hz(pitch: np.ndarray | float) -> np.ndarray | float:
    """Frequency of a MIDI pitch (69 = A4 = 440 Hz); fractional pitches bend smoothly."""
    return 440.0 * 2.0 ** ((np.asarray(pitch) - 69.0) / 12.0)


def harmonic_count(max_hz: float, sample_rate: int) -> int:
    """How many harmonics of `max_hz` stay below 90% of Nyquist (at least the fundamental)."""
    return int(np.clip(0.45 * sample_rate // max_hz, 1, TABLE_SIZE // 2 - 1))


def wavetable(amplitudes: np.ndarray) -> np.ndarray:
    """One cycle of sum_k a_k sin(2 pi k x), peak 1, plus a guard sample for interpolation."""
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=complex)
    spectrum[1 : len(amplitudes) + 1] = -0.5j * TABLE_SIZE * np.asarray(amplitudes)
    cycle = np.fft.irfft(spectrum, TABLE_SIZE)
    cycle /= np.abs(cycle).max()
    return np.append(cycle, cycle[0])


def lowpassed_saw(count: int, fundamental: float, cutoff: float, slope: float = 1.0) -> np.ndarray:
    """Harmonic amplitudes of a sawtooth through a gentle low-pass at `cutoff` Hz."""
    k = np.arange(1, count + 1)
    return k**-slope / np.sqrt(1.0 + (k * fundamental / cutoff) ** 4)


def oscillate(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Read `table` at `phase` (in cycles) with linear interpolation."""
    position = np.mod(phase, 1.0) * TABLE_SIZE
    index = np.minimum(position.astype(np.int64), TABLE_SIZE - 1)
    frac = position - index
    return table[index] + frac * (table[index + 1] - table[index])


def envelope(
    frames: int,
    held: float,
    sample_rate: int,
    attack: float,
    decay: float,
    sustain: float,
    release: float,
) -> np.ndarray:
    """Attack-decay-sustain while the note is held for `held` s, then a linear release."""
    t = np.arange(frames) / sample_rate
    rise = np.minimum(t / attack, 1.0)
    fall = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - attack, 0.0) / decay)
    gate = np.clip(1.0 - (t - held) / release, 0.0, 1.0)
    return rise * fall * gate


def band_noise(
    rng: np.random.Generator,
    frames: int,
    sample_rate: int,
    low: float,
    high: float | None = None,
) -> np.ndarray:
    """White noise through smooth high- and low-pass slopes (FFT domain), peak 1.

    The FFT runs over a power-of-two length (fast for any `frames`) and is cut to `frames`.
    """
    size = 1 << max(frames - 1, 1).bit_length()
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    gain = 1.0 / np.sqrt(1.0 + (low / np.maximum(freqs, 1e-3)) ** 4)
    if high is not None:
        gain /= np.sqrt(1.0 + (freqs / high) ** 4)
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(size)) * gain, size)[:frames]
    return noise / np.abs(noise).max()


def place(out: np.ndarray, start: int, audio: np.ndarray) -> None:
    """Add `audio` into `out` from frame `start` (time on the last axis), cut at the end."""
    stop = min(out.shape[-1], start + audio.shape[-1])
    if stop > start:
        out[..., start:stop] += audio[..., : stop - start]


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of a mono signal; -1 is hard left, +1 hard right."""
    angle = (position + 1.0) * np.pi / 4
    return np.stack([np.cos(angle) * mono, np.sin(angle) * mono])


def room(rng: np.random.Generator, sample_rate: int, rt60: float, brightness: float) -> np.ndarray:
    """A stereo impulse response: decorrelated noise decaying by 60 dB over `rt60` s.

    Different noise per channel widens what goes through it, as a real room does.
    """
    frames = int(rt60 * sample_rate)
    t = np.arange(frames) / sample_rate
    decay = 10.0 ** (-3.0 * t / rt60) * (t > 0.012)
    tails = np.stack([band_noise(rng, frames, sample_rate, 150.0, brightness) for _ in "LR"])
    response = tails * decay
    return response / np.sqrt(np.sum(response**2, axis=1, keepdims=True))


def reverberate(stereo: np.ndarray, response: np.ndarray, wet: float) -> np.ndarray:
    """Dry plus `wet` times the convolution with `response`, cut to the input length.

    Overlap-add in blocks about twice the response long: a few cache-sized FFTs run several
    times faster than one FFT over the whole track.
    """
    frames, taps = stereo.shape[1], response.shape[1]
    size = 1 << (2 * taps).bit_length()
    block = size - taps + 1
    kernel = np.fft.rfft(response, size)
    tail = np.zeros((2, frames + size))
    for start in range(0, frames, block):
        chunk = np.fft.rfft(stereo[:, start : start + block], size)
        tail[:, start : start + size] += np.fft.irfft(chunk * kernel, size)
    return stereo + wet * tail[:, :frames]
