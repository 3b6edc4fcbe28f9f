"""Pitch shift and time stretch in one Rubber Band pass.

These two effects are nearly all of a render's cost, and Rubber Band can do both in a single
call for little more than the price of one, so they are always fused. Two backends:
`pedalboard` (its built-in Rubber Band library, in process) and `pyrubberband` (the
`rubberband` command-line tool; it round-trips through 16-bit wav files, so it is both slower and
quantised). `quality` picks Rubber Band's engine: `best` is R3 ("finer"), `fast` is R2.
docs/effects.md has the measured artefacts of both engines that chose the default.
"""

from __future__ import annotations

import math
import shutil

import numpy as np

from augment.errors import ConfigError

STRETCH_BACKENDS = ("pedalboard", "pyrubberband")
QUALITIES = ("fast", "best")


def output_margin(sample_rate: int) -> int:
    """Extra output frames rendered past the segment and cut, so Rubber Band's end-of-stream
    handling never reaches the samples we keep."""
    return sample_rate // 10


def frames_to_read(frames: int, factor: float, sample_rate: int) -> int:
    """Source frames needed so that stretching by `factor` yields at least `frames` + margin.

    Rubber Band returns floor(n / factor) frames for n input frames.
    """
    return math.ceil((frames + output_margin(sample_rate)) * factor) + 1


def check_backend(backend: str, quality: str) -> None:
    if backend not in STRETCH_BACKENDS:
        raise ConfigError(f"--stretch-backend must be one of {STRETCH_BACKENDS}, got {backend!r}")
    if quality not in QUALITIES:
        raise ConfigError(f"--quality must be one of {QUALITIES}, got {quality!r}")
    if backend == "pyrubberband" and shutil.which("rubberband") is None:
        raise ConfigError(
            "--stretch-backend pyrubberband needs the rubberband command-line tool: "
            "apt-get install rubberband-cli (or use --stretch-backend pedalboard)"
        )


def pitch_stretch(
    audio: np.ndarray,
    sample_rate: int,
    semitones: float,
    factor: float,
    frames: int,
    backend: str = "pedalboard",
    quality: str = "best",
) -> np.ndarray:
    """Shift by `semitones` and stretch by `factor` (channels, n) audio; return `frames` frames.

    The caller reads `frames_to_read(frames, factor, sr)` source frames, so the result is cut
    from real output and never padded with silence.
    """
    if backend == "pedalboard":
        import pedalboard

        out = pedalboard.time_stretch(
            np.ascontiguousarray(audio, dtype=np.float32),
            float(sample_rate),
            stretch_factor=float(factor),
            pitch_shift_in_semitones=float(semitones),
            high_quality=quality == "best",
        )
    else:
        import pyrubberband

        engine = {"--fine" if quality == "best" else "--fast": ""}
        if factor == 1.0:  # time_stretch returns its input untouched at rate 1, dropping --pitch
            out = pyrubberband.pitch_shift(audio.T, sample_rate, float(semitones), rbargs=engine)
        else:
            args = {"--pitch": float(semitones), **engine}
            out = pyrubberband.time_stretch(audio.T, sample_rate, float(factor), rbargs=args)
        out = out.T
    if out.shape[1] < frames:
        raise RuntimeError(
            f"Rubber Band returned {out.shape[1]} frames for {audio.shape[1]} at factor "
            f"{factor}; expected at least {frames}"
        )
    return np.ascontiguousarray(out[:, :frames], dtype=np.float32)
