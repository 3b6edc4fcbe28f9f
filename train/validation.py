"""Validation data: held-out rendered items, or whole real MUSDB18 tracks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import musdb
import numpy as np
import torch
import xxhash
from torch.utils.data import Dataset as TorchDataset

from manifests import Dataset
from manifests.schema import MIXTURE
from train.audio import downmix, resample
from train.crops import ItemFiles
from train.errors import TrainError

MUSDB_SUBSETS = ("test", "valid", "train")


def holdout_ids(dataset: Dataset, fraction: float) -> set[str]:
    """Items kept out of training for validation, ranked by a hash of their id.

    Computed over the whole dataset, before `--where`, so runs that select different items
    are validated on the same items and stay comparable.
    """
    if not 0.0 < fraction < 1.0:
        raise TrainError(f"--valid-fraction must be between 0 and 1, got {fraction}")
    ids = sorted(dataset.items["item_id"], key=lambda i: xxhash.xxh3_64_intdigest(i.encode()))
    return set(ids[: max(1, round(fraction * len(ids)))])


class RenderedTracks(TorchDataset):
    """Whole items of a dataset as (mixture, sources), at the model's rate: its validation
    songs (`real`, rows with role `valid`) or held-out rendered items."""

    def __init__(self, items: list[ItemFiles], sample_rate: int, mono: bool, real: bool = False):
        self.items, self.sample_rate, self.mono, self.real = items, sample_rate, mono, real

    def __len__(self) -> int:
        return len(self.items)

    def describe(self) -> str:
        if self.real:
            names = ", ".join(item.item_id for item in self.items[:5])
            more = f" and {len(self) - 5} more" if len(self) > 5 else ""
            return f"{len(self)} real songs of the dataset's validation split: {names}{more}"
        return (
            f"{len(self)} held-out rendered items (--valid-fraction: augmented, from the "
            "training songs)"
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.items[index]
        audio = item.read().transpose(0, 2, 1)
        audio = downmix(resample(audio, item.sample_rate, self.sample_rate), self.mono)
        return torch.from_numpy(audio[0]), torch.from_numpy(audio[1:])


def open_musdb(root: Path, subset: str) -> list[Any]:
    """MUSDB18 tracks of `subset` ('valid' is musdb's own validation split of 'train').

    Reads the HQ wav layout (`<subset>/<track>/mixture.wav`) or the `.stem.mp4` form.
    """
    if subset not in MUSDB_SUBSETS:
        raise TrainError(f"MUSDB subset {subset!r} is unknown; choose one of {MUSDB_SUBSETS}")
    folder = Path(root) / ("train" if subset == "valid" else subset)
    is_wav = any(folder.glob(f"*/{MIXTURE}.wav"))
    if not is_wav and not any(folder.glob("*.stem.mp4")):
        raise TrainError(
            f"{folder} holds no MUSDB18 tracks (<track>/{MIXTURE}.wav or <track>.stem.mp4); "
            "pass the folder that contains train/ and test/"
        )
    split = "valid" if subset == "valid" else None
    tracks = musdb.DB(str(root), is_wav=is_wav, subsets=folder.name, split=split).tracks
    if not tracks:
        hint = (
            " (musdb's validation split is 14 named songs of MUSDB18's train): for another "
            "root pass --valid-root with a folder whose test/ holds the validation songs and "
            "--valid-subset test"
            if subset == "valid"
            else ""
        )
        raise TrainError(f"{folder} holds none of musdb's {subset!r} tracks{hint}")
    return tracks


def track_audio(track: Any, sources: Sequence[str]) -> np.ndarray:
    """(1 + sources, channels, frames) float32 at the track's own rate."""
    signals = [track.audio, *(track.targets[s].audio for s in sources)]
    return np.stack([s.T for s in signals]).astype(np.float32)


class MusdbTracks(TorchDataset):
    """Whole real MUSDB18 tracks as (mixture, sources), at the model's rate."""

    def __init__(self, tracks: list[Any], sources: Sequence[str], sample_rate: int, mono: bool):
        self.tracks, self.sources = tracks, tuple(sources)
        self.sample_rate, self.mono = sample_rate, mono

    def __len__(self) -> int:
        return len(self.tracks)

    def describe(self) -> str:
        names = ", ".join(track.name for track in self.tracks[:5])
        more = f" and {len(self) - 5} more" if len(self) > 5 else ""
        return f"{len(self)} real tracks: {names}{more}"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        track = self.tracks[index]
        audio = track_audio(track, self.sources)
        audio = downmix(resample(audio, int(track.rate), self.sample_rate), self.mono)
        return torch.from_numpy(audio[0]), torch.from_numpy(audio[1:])
