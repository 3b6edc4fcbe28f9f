"""`mstrain separate`: one song in, one file per source out, at the song's rate and length."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from manifests.files import write_audio
from train.errors import TrainError
from train.inference import OVERLAP, separate
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


def song_name(song: Path) -> str:
    """The output folder's name: the file's stem, or its folder's name for the
    `<song>/mixture.wav` of MUSDB18-HQ, where every input is called mixture."""
    return song.parent.name if song.stem == "mixture" else song.stem


def check_song_names(songs: Sequence[Path]) -> None:
    """Refuse inputs that would write to the same folder (only the last would survive)."""
    seen: dict[str, Path] = {}
    for song in songs:
        name = song_name(song)
        if name in seen:
            raise TrainError(
                f"{seen[name]} and {song} would both be written to OUT/{name}/; separate them "
                "in two runs with different --out folders"
            )
        seen[name] = song


def separate_song(
    model: SeparationModel,
    song: Path,
    out: Path,
    device: torch.device,
    chunk_seconds: float,
    stem: str | None = None,
    fmt: str = "wav",
    subtype: str = "FLOAT",
    overlap: float = OVERLAP,
) -> list[Path]:
    """Write `out/<song name>/<source>.<fmt>`; FLOAT by default, so loud estimates do not
    clip. With `stem`, two files in the two-stems habit of Demucs and Spleeter: the stem and
    `no_<stem>`, the mixture minus it (their sum is the song). `overlap` is the fraction of
    each `chunk_seconds` chunk shared with the next (train/inference.py)."""
    if stem is not None and stem not in model.sources:
        raise TrainError(f"--stem {stem} is not one of the model's sources {list(model.sources)}")
    if fmt == "flac" and subtype == "FLOAT":
        raise TrainError("flac holds PCM only: pass --subtype PCM_16 or PCM_24 with --format flac")
    audio, rate = read_song(song)
    estimates = dict(
        zip(
            model.sources,
            separate(model.to(device), audio, rate, device, chunk_seconds, overlap),
            strict=True,
        )
    )
    if stem is not None:
        estimates = {stem: estimates[stem], f"no_{stem}": audio - estimates[stem]}
    paths = []
    for source, estimate in estimates.items():
        path = out / song_name(song) / f"{source}.{fmt}"
        write_audio(path, estimate, rate, subtype=subtype)  # PCM clips above full scale
        paths.append(path)
    return paths
