"""`mstrain separate`: one song in, one file per source out, at the song's rate and length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from manifests.files import write_audio
from train.errors import TrainError
from train.inference import separate
from train.models.base import SeparationModel


def read_song(path: Path) -> tuple[np.ndarray, int]:
    if not path.is_file():
        raise TrainError(f"song {path} does not exist")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except sf.SoundFileError as exc:
        raise TrainError(f"cannot read song {path} ({exc}); pass a wav or flac file") from exc
    if len(data) == 0:
        raise TrainError(f"song {path} holds no audio frames")
    return data.T, rate


def separate_song(
    model: SeparationModel, song: Path, out: Path, device: torch.device, chunk_seconds: float
) -> list[Path]:
    """Write `out/<song name>/<source>.wav` (32-bit float, so loud estimates do not clip)."""
    audio, rate = read_song(song)
    estimates = separate(model.to(device), audio, rate, device, chunk_seconds)
    paths = [out / song.stem / f"{source}.wav" for source in model.sources]
    for path, estimate in zip(paths, estimates, strict=True):
        write_audio(path, estimate, rate, subtype="FLOAT")
    return paths
