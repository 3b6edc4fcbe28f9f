"""Signal helpers shared by the loaders and inference: resampling, length, channels, level,
and the allocator setting that keeps crop buffers mapped."""

from __future__ import annotations

import ctypes
import math

import numpy as np
import soxr

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h
_MMAP_THRESHOLD_MAX = 32 << 20  # the most glibc accepts on 64-bit systems


def keep_freed_memory() -> None:
    """Make glibc keep freed crop buffers for reuse instead of returning them to the OS.

    A crop's buffers are a few MB each. glibc serves such sizes with fresh mappings, or trims
    them off the heap when they are freed, so every crop page-faults its memory back in. Where
    page faults are costly (a VM) this doubled the loader's time per crop; see
    benchmarks/loader.py. Process-wide, so `fit` calls it once, before loader workers fork and
    inherit it. No-op without glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    libc.mallopt(_M_TRIM_THRESHOLD, 8 * _MMAP_THRESHOLD_MAX)


def resample(audio: np.ndarray, rate: int, new_rate: int, axis: int = -1) -> np.ndarray:
    """float32 audio resampled along `axis` with libsoxr's HQ filter (as librosa does).

    soxr measured twice as fast as scipy's resample_poly on 44.1 -> 16 kHz training crops, with
    a 1000x smaller error on a tone (benchmarks/loader.py); at 16 kHz resampling is most of a
    crop's cost. Every other axis is a channel to soxr, converted in one call.
    """
    if rate == new_rate:
        return audio
    frames_last = np.moveaxis(audio, axis, 0)
    flat = np.ascontiguousarray(frames_last.reshape(frames_last.shape[0], -1), dtype=np.float32)
    out = soxr.resample(flat, rate, new_rate, quality="HQ")
    return np.moveaxis(out.reshape(-1, *frames_last.shape[1:]), 0, axis)


def fit_length(audio: np.ndarray, frames: int, axis: int = -1) -> np.ndarray:
    """Crop or zero-pad `axis` to `frames` (resampling rounds lengths either way)."""
    axis %= audio.ndim
    if audio.shape[axis] >= frames:
        return audio[(slice(None),) * axis + (slice(frames),)]
    pad = [(0, 0)] * audio.ndim
    pad[axis] = (0, frames - audio.shape[axis])
    return np.pad(audio, pad)


def downmix(audio: np.ndarray, mono: bool, axis: int = -2) -> np.ndarray:
    """The mean over the channel `axis` when `mono`, else `audio` itself."""
    return audio.mean(axis=axis, keepdims=True) if mono else audio


def rms_db(audio: np.ndarray) -> float:
    """RMS level in dB full scale of all samples; -inf for digital silence."""
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    return 10 * math.log10(power) if power > 0 else -math.inf
