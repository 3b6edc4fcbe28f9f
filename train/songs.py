"""Training straight from the source songs: `mstrain --data MUSDB18HQ_ROOT`.

The baseline every peer trainer uses is the songs themselves with online remixing (Demucs,
Open-Unmix). To compare msaug's renders with it at equal steps, the same loader reads a
MUSDB18-HQ root as if it were a dataset of one item per song: musdb's training split of
`train/`, each `<song>/{mixture,vocals,drums,bass,other}.wav`. Validation then defaults to the
root's own validation split (musdb's 14 songs), real audio. `.stem.mp4` roots are refused:
random crops from mp4 decode from the nearest seek point every time; `msaug prepare` makes
the wav layout once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import soundfile as sf

from manifests import STEM_NAMES, Dataset
from manifests.musdb_split import musdb_validation_tracks
from manifests.schema import DATASET_JSON, MIXTURE
from train.errors import TrainError
from train.shard_source import is_shard_data, open_shards

SONGS_SUBSET = "train"


def is_song_root(root: Path) -> bool:
    return not (root / DATASET_JSON).exists() and any(
        (root / SONGS_SUBSET).glob(f"*/{MIXTURE}.wav")
    )


class SongsDataset(Dataset):
    """A MUSDB18-HQ root seen as a dataset: one item per training song, paths relative to the
    root, frames and rate from each file's header."""

    def manifest_checksum(self) -> str:
        """Identifies the songs a model was trained on: names and sizes (hashing 30 GB of
        audio at every start would cost minutes)."""
        listing = sorted(zip(self.stems["path"], self.stems["bytes"], strict=True))
        return "songs:" + hashlib.sha256(repr(listing).encode()).hexdigest()


def open_songs(root: Path) -> SongsDataset:
    folder = root / SONGS_SUBSET
    if any(folder.glob("*.stem.mp4")):
        raise TrainError(
            f"{root} is MUSDB18 in .stem.mp4 form; run `msaug prepare {root} --out CACHE` and "
            "train on the cache"
        )
    valid = musdb_validation_tracks()
    items, stems = [], []
    for song in sorted(p for p in folder.iterdir() if (p / f"{MIXTURE}.wav").is_file()):
        if song.name in valid:
            continue
        info = sf.info(song / f"{MIXTURE}.wav")
        items.append(
            {
                "item_id": song.name,
                "subset": SONGS_SUBSET,
                "role": "train",
                "mode": "song",
                "mixture_path": f"{SONGS_SUBSET}/{song.name}/{MIXTURE}.wav",
                "num_frames": info.frames,
                "sample_rate": info.samplerate,
                "channels": info.channels,
            }
        )
        for stem in STEM_NAMES:
            path = song / f"{stem}.wav"
            if not path.is_file():
                raise TrainError(f"{path} is missing; a MUSDB18-HQ song has all four stems")
            stems.append(
                {
                    "item_id": song.name,
                    "stem": stem,
                    "path": f"{SONGS_SUBSET}/{song.name}/{stem}.wav",
                    "bytes": path.stat().st_size,
                }
            )
    if not items:
        raise TrainError(f"{folder} holds no training songs outside musdb's validation split")
    header = {"stems": list(STEM_NAMES), "effect_columns": {}}
    return SongsDataset(root, header, pd.DataFrame(items), pd.DataFrame(stems))


def open_training_data(data: str | Path) -> Dataset:
    """An msaug dataset, packed shards (local or remote), or the songs of a MUSDB18-HQ root."""
    if is_shard_data(str(data)):
        return open_shards(str(data))
    root = Path(data)
    return open_songs(root) if is_song_root(root) else Dataset.open(root)
