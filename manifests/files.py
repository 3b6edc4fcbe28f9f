"""Atomic, checksummed audio files: the only way audio enters a dataset.

Every file is written under a hidden temporary name in its final folder and renamed into
place, so a crash leaves either the old file, the new file, or a temp file that the next
writer removes; never a truncated file under a listed name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from manifests.checksum import file_checksum

TEMP_MARK = ".tmp-"


@dataclass(frozen=True)
class FileInfo:
    checksum: str
    bytes: int


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def is_temp(path: Path) -> bool:
    return path.name.startswith(".") and TEMP_MARK in path.name


_PCM_BITS = {"PCM_16": 16, "PCM_24": 24}
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


def _pcm_integers(audio: np.ndarray, bits: int) -> np.ndarray:
    scale = float(2 ** (bits - 1))
    return np.clip(np.round(audio * scale), -scale, scale - 1)


def quantize(audio: np.ndarray, subtype: str) -> np.ndarray:
    """The float32 samples a reader gets back after `write_audio(audio, subtype)`.

    Rendering sums the quantised stems, so the mixture file equals the sum of the stem files
    as written, sample for sample, not the sum of the float stems before writing.
    """
    bits = _PCM_BITS.get(subtype)
    if bits is None:
        return audio.astype(np.float32)
    return (_pcm_integers(audio, bits) / float(2 ** (bits - 1))).astype(np.float32)


def write_audio(
    path: str | Path,
    audio: np.ndarray,
    sample_rate: int,
    subtype: str = "PCM_16",
) -> FileInfo:
    """Write channels-first `audio` (channels, frames) atomically; return checksum and size.

    PCM is written from integers we round ourselves (libsndfile scales floats by 2^15 - 1 on
    write but 2^15 on read), so reading the file back gives exactly `quantize(audio)`.
    The container follows the extension (.wav or .flac).
    """
    path = Path(path)
    bits = _PCM_BITS.get(subtype)
    if bits is None:
        data = audio.astype(np.float32)
    elif bits == 16:
        data = _pcm_integers(audio, 16).astype(np.int16)
    else:  # libsndfile takes 24-bit samples as the top bits of int32
        data = _pcm_integers(audio, 24).astype(np.int32) << 8
    with atomic_path(path) as temp:
        sf.write(
            temp,
            np.ascontiguousarray(data.T),
            sample_rate,
            subtype=subtype,
            format=path.suffix.lstrip(".").upper(),
        )
        info = FileInfo(file_checksum(temp), temp.stat().st_size)
    return info


def read_audio(path: str | Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Read frames [start, stop) as float32 (channels, frames) without reading the rest."""
    data, _ = sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
    return data.T
