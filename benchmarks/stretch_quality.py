"""Rubber Band engines compared on the artefacts augmentation cares about, and on time.

Engines: pedalboard's built-in Rubber Band with R3 (`--quality best`) and R2 (`fast`), the
rubberband CLI through pyrubberband (`--stretch-backend pyrubberband`, R3 `--fine` and R2
`--fast`), all through `augment.stretch.pitch_stretch` as `msaug render` calls them; and librosa
(the source project's phase vocoder, pitch shift then stretch) for reference.

1. Pitch: sines of 110 to 2000 Hz shifted by values in [-2, 2] semitones. The dominant
   frequency of the steady middle second is found by parabolic interpolation of the log
   magnitude around the peak of a zero-padded Hann spectrum; the error is in cents against
   2^(s/12) f0. "off-peak" is the energy more than 10 Hz from the peak, in dB of the total:
   sidebands and phasiness that a frequency error does not show.
2. Transients: a train of 20 ms decaying noise clicks every 250 ms, stretched by 0.8 to 1.2
   (msaug's factor: > 1 is shorter). Each click's onset (5% of its energy) and spread (time
   holding the central 90% of its energy) are measured in a window around where it should
   land; the spacing error is against 250 ms / factor.
3. Time: one 10 s stereo stem at 44.1 kHz, +1 semitone and factor 1.1 fused (wall and CPU,
   CPU including the rubberband CLI's), best of three.

    python benchmarks/stretch_quality.py
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import librosa
import numpy as np

from augment.stretch import frames_to_read, pitch_stretch

SR = 44100
SEMITONES = (-2.0, -1.3, -0.5, 0.7, 1.6, 2.0)
FREQUENCIES = (110.0, 220.0, 440.0, 1000.0, 2000.0)
FACTORS = (0.8, 0.9, 1.1, 1.2)
CLICK_PERIOD = 0.25
OFF_PEAK_HZ = 10.0

Engine = Callable[[np.ndarray, float, float, int], np.ndarray]


def _rubber_band(backend: str, quality: str) -> Engine:
    def run(audio: np.ndarray, semitones: float, factor: float, frames: int) -> np.ndarray:
        return pitch_stretch(audio, SR, semitones, factor, frames, backend, quality)

    return run


def _librosa(audio: np.ndarray, semitones: float, factor: float, frames: int) -> np.ndarray:
    out = []
    for channel in audio:
        y = librosa.effects.pitch_shift(channel, sr=SR, n_steps=semitones) if semitones else channel
        out.append(librosa.effects.time_stretch(y, rate=factor) if factor != 1 else y)
    return np.stack(out)[:, :frames]


ENGINES: dict[str, Engine] = {
    "pedalboard R3 (best)": _rubber_band("pedalboard", "best"),
    "pedalboard R2 (fast)": _rubber_band("pedalboard", "fast"),
    "pyrubberband R3 (--fine)": _rubber_band("pyrubberband", "best"),
    "pyrubberband R2 (--fast)": _rubber_band("pyrubberband", "fast"),
    "librosa (source)": _librosa,
}


def _stereo(mono: np.ndarray) -> np.ndarray:
    return np.stack([mono, mono]).astype(np.float32)


def dominant_frequency(x: np.ndarray) -> tuple[float, float]:
    """(peak frequency in Hz, energy more than OFF_PEAK_HZ from it in dB of the total)."""
    pad = 8 * len(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=pad))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-30)
    peak = (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / pad
    freqs = np.arange(len(spectrum)) * SR / pad
    power = spectrum**2
    off = power[np.abs(freqs - peak) > OFF_PEAK_HZ].sum() / power.sum()
    return peak, 10 * np.log10(max(off, 1e-30))


def pitch_errors(engine: Engine | None) -> list[tuple[float, float]]:
    """(cents error, off-peak dB) per (semitones, f0); engine None measures the estimator."""
    frames = 2 * SR
    middle = slice(SR // 2, SR // 2 + SR)
    results = []
    for semitones in SEMITONES:
        for f0 in FREQUENCIES:
            t = np.arange(frames_to_read(frames, 1.0, SR)) / SR
            audio = _stereo(0.5 * np.sin(2 * np.pi * f0 * t))
            if engine is None:
                out, expected = audio, f0
            else:
                out, expected = engine(audio, semitones, 1.0, frames), f0 * 2 ** (semitones / 12)
            peak, off = dominant_frequency(out[0, middle].astype(np.float64))
            results.append((1200 * np.log2(peak / expected), off))
    return results


def click_train(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Stereo clicks (20 ms of noise under a 3 ms exponential decay) and their start times."""
    rng = np.random.default_rng(0)
    length = round(0.02 * SR)
    click = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.003 * SR))
    starts = np.arange(CLICK_PERIOD / 2, seconds - 0.05, CLICK_PERIOD)
    mono = np.zeros(round(seconds * SR))
    for start in starts:
        i = round(start * SR)
        mono[i : i + length] += 0.8 * click
    return _stereo(mono), starts


def click_shape(audio: np.ndarray, expected: float) -> tuple[float, float]:
    """(onset s, 90% energy duration s) of the click expected at `expected` s."""
    centre = round(expected * SR)
    lo = max(0, centre - round(0.3 * CLICK_PERIOD * SR))
    hi = centre + round(0.6 * CLICK_PERIOD * SR)  # the next click lands >= 0.83 periods later
    energy = np.square(audio[:, lo:hi], dtype=np.float64).sum(axis=0)
    cumulative = np.cumsum(energy) / energy.sum()
    t5, t95 = np.searchsorted(cumulative, [0.05, 0.95])
    return (lo + t5) / SR, (t95 - t5) / SR


@dataclass(frozen=True)
class Transients:
    factor: float
    spacing_error_ms: float  # mean measured spacing minus CLICK_PERIOD / factor
    jitter_ms: float  # std of the spacings
    offset_ms: float  # mean onset minus where it should be (latency; < 0: pre-echo)
    spread_ms: float  # median 90% energy duration after
    spread_in_ms: float  # the same before


def transients(engine: Engine, factor: float) -> Transients:
    frames = 3 * SR
    audio, starts = click_train(frames_to_read(frames, factor, SR) / SR)
    out = engine(audio, 0.0, factor, frames)
    landing = starts / factor
    landing = landing[landing < frames / SR - 0.1]
    onsets, spreads = np.array([click_shape(out, t) for t in landing]).T
    inputs = np.array([click_shape(audio, t) for t in starts[: len(landing)]])
    spacings = np.diff(onsets)
    return Transients(
        factor=factor,
        spacing_error_ms=1000 * (spacings.mean() - CLICK_PERIOD / factor),
        jitter_ms=1000 * spacings.std(),
        offset_ms=1000 * float(np.mean(onsets - (inputs[:, 0] / factor))),
        spread_ms=1000 * float(np.median(spreads)),
        spread_in_ms=1000 * float(np.median(inputs[:, 1])),
    )


def stem(seconds: float) -> np.ndarray:
    """A music-like stereo stem: a few harmonic notes, noise hits, slightly different sides."""
    rng = np.random.default_rng(1)
    n = round(seconds * SR)
    t = np.arange(n) / SR
    notes = sum(
        np.sin(2 * np.pi * f * h * t + rng.uniform(0, 6)) / h
        for f in (110.0, 164.8, 277.2)
        for h in (1, 2, 3)
    )
    hits = rng.standard_normal(n) * np.exp(-((t * 2) % 1.0) * 40)
    left = 0.1 * notes + 0.2 * hits
    return np.stack([left, np.roll(left, 40) * 0.9]).astype(np.float32)


def _cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def time_per_stem(engine: Engine) -> tuple[float, float]:
    """Best of three (wall s, CPU s) for one 10 s stereo stem, +1 semitone, factor 1.1."""
    frames = 10 * SR
    audio = stem(frames_to_read(frames, 1.1, SR) / SR)
    best = (float("inf"), float("inf"))
    for _ in range(3):
        wall, cpu = time.perf_counter(), _cpu()
        engine(audio, 1.0, 1.1, frames)
        best = min(best, (time.perf_counter() - wall, _cpu() - cpu))
    return best


def main() -> None:
    _librosa(_stereo(np.zeros(SR)), 1.0, 1.1, SR // 2)  # librosa's first call compiles code
    summary = [
        f"{'engine':<26} {'max|cents|':>10} {'mean|cents|':>11} {'off-peak dB':>11} "
        f"{'spacing err ms':>14} {'jitter ms':>9} {'onset ms':>8} {'click 90% ms':>12} "
        f"{'wall s':>6} {'cpu s':>6}"
    ]
    reference = pitch_errors(None)
    cents = [abs(c) for c, _ in reference]
    summary.append(
        f"{'input (estimator floor)':<26} {max(cents):>10.4f} {np.mean(cents):>11.4f} "
        f"{np.median([o for _, o in reference]):>11.1f}"
    )
    by_f0 = [f"{'engine':<26} " + " ".join(f"{f'{f:g} Hz':>9}" for f in FREQUENCIES)]
    details = [
        f"{'engine':<26} {'factor':>6} {'spacing err ms':>14} {'jitter ms':>9} "
        f"{'onset ms':>8} {'click 90% ms in -> out':>22}"
    ]
    for name, engine in ENGINES.items():
        errors = pitch_errors(engine)
        cents = [abs(c) for c, _ in errors]
        worst = [max(cents[k :: len(FREQUENCIES)]) for k in range(len(FREQUENCIES))]
        by_f0.append(f"{name:<26} " + " ".join(f"{w:>9.3f}" for w in worst))
        clicks = [transients(engine, f) for f in FACTORS]
        wall, cpu = time_per_stem(engine)
        summary.append(
            f"{name:<26} {max(cents):>10.4f} {np.mean(cents):>11.4f} "
            f"{np.median([o for _, o in errors]):>11.1f} "
            f"{max(abs(c.spacing_error_ms) for c in clicks):>14.3f} "
            f"{max(c.jitter_ms for c in clicks):>9.3f} "
            f"{np.mean([c.offset_ms for c in clicks]):>8.2f} "
            f"{np.median([c.spread_ms for c in clicks]):>12.2f} {wall:>6.2f} {cpu:>6.2f}"
        )
        details += [
            f"{name:<26} {c.factor:>6.2f} {c.spacing_error_ms:>14.3f} {c.jitter_ms:>9.3f} "
            f"{c.offset_ms:>8.2f} {c.spread_in_ms:>10.2f} -> {c.spread_ms:>8.2f}"
            for c in clicks
        ]
    print("\n".join(summary))
    print(
        f"\npitch: {len(SEMITONES)} shifts {SEMITONES} x f0 {FREQUENCIES} Hz; "
        f"off-peak = median energy > {OFF_PEAK_HZ:g} Hz from the peak. transients: worst "
        "|spacing error| and jitter over the factors, mean onset offset, median click spread."
    )
    print("\nworst |cents| per f0 over the shifts:\n" + "\n".join(by_f0))
    print("\n" + "\n".join(details))


if __name__ == "__main__":
    main()
