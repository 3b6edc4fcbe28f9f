"""Loaders: random crops of rendered items for training, whole real tracks for validation.

Training reads a rendered dataset only through `manifests.Dataset` and only the frames of each
crop. Every crop is decided by (seed, epoch, index), never by a worker's state, so a run gives
the same batches at any `--workers` and after `--resume`.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import musdb
import numpy as np
import torch
import xxhash
from scipy.signal import resample_poly
from torch.utils.data import DataLoader, Sampler, Subset, get_worker_info
from torch.utils.data import Dataset as TorchDataset

from manifests import STEM_NAMES, Dataset
from manifests.files import read_audio
from manifests.schema import MIXTURE
from train.config import DataConfig, LoopConfig
from train.errors import TrainError

MUSDB_SUBSETS = ("test", "valid", "train")


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


def resample(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Polyphase resampling along the last axis (scipy; torchaudio is not a dependency)."""
    if rate == new_rate:
        return audio
    step = math.gcd(rate, new_rate)
    return resample_poly(audio, new_rate // step, rate // step, axis=-1).astype(np.float32)


def fit_length(audio: np.ndarray, frames: int) -> np.ndarray:
    """Crop or zero-pad the last axis to `frames` (resampling rounds lengths up)."""
    if audio.shape[-1] >= frames:
        return audio[..., :frames]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, frames - audio.shape[-1])]
    return np.pad(audio, pad)


def downmix(audio: np.ndarray, mono: bool) -> np.ndarray:
    return audio.mean(axis=-2, keepdims=True) if mono else audio


@dataclass(frozen=True)
class ItemFiles:
    """Where one rendered item's audio lies: the mixture first, then the model's sources."""

    item_id: str
    paths: tuple[str, ...]
    frames: int
    sample_rate: int

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(1 + sources, channels, frames) float32; frames past the end of the file are zeros."""
        stop = self.frames if stop is None else stop
        audio = np.stack([read_audio(path, start, stop) for path in self.paths])
        return fit_length(audio, stop - start)


def item_files(dataset: Dataset, sources: Sequence[str]) -> list[ItemFiles]:
    """Plain per-item records, cheap to hand to forked loader workers (no DataFrames)."""
    paths = dataset.stems.pivot(index="item_id", columns="stem", values="path")
    return [
        ItemFiles(
            item_id=row.item_id,
            paths=tuple(
                str(dataset.path(p))
                for p in (row.mixture_path, *(paths.at[row.item_id, s] for s in sources))
            ),
            frames=int(row.num_frames),
            sample_rate=int(row.sample_rate),
        )
        for row in dataset.items.itertuples()
    ]


def holdout_ids(dataset: Dataset, fraction: float) -> set[str]:
    """Items kept out of training for validation, ranked by a hash of their id.

    Computed over the whole dataset, before `--where`, so runs that select different items
    are validated on the same items and stay comparable.
    """
    if not 0.0 < fraction < 1.0:
        raise TrainError(f"--valid-fraction must be between 0 and 1, got {fraction}")
    ids = sorted(dataset.items["item_id"], key=lambda i: xxhash.xxh3_64_intdigest(i.encode()))
    return set(ids[: max(1, round(fraction * len(ids)))])


class CropKey(NamedTuple):
    item: int
    epoch: int
    index: int


class CropSampler(Sampler[CropKey]):
    """`n_crops` keys per epoch; items in a fresh permutation per pass, seeded by the epoch.

    Under DistributedDataParallel each of `world` processes takes its `batch_size` keys of
    every global batch of `batch_size * world` (rank r the r-th slice), so the ranks together
    see exactly the crops one process would with the global batch size.
    """

    def __init__(
        self, n_items: int, n_crops: int, seed: int, rank: int = 0, world: int = 1, batch: int = 1
    ):
        if n_crops % (batch * world):
            raise ValueError(f"{n_crops} crops do not split into batches of {batch} x {world}")
        self.n_items, self.n_crops, self.seed = n_items, n_crops, seed
        self.rank, self.world, self.batch = rank, world, batch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_crops // self.world

    def __iter__(self) -> Iterator[CropKey]:
        rng = np.random.default_rng([self.seed, self.epoch])
        passes = -(-self.n_crops // self.n_items)
        order = np.concatenate([rng.permutation(self.n_items) for _ in range(passes)])
        for index, item in enumerate(order[: self.n_crops]):
            if index // self.batch % self.world == self.rank:
                yield CropKey(int(item), self.epoch, index)


def rms_db(audio: np.ndarray) -> float:
    """RMS level in dB full scale of all samples; -inf for digital silence."""
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    return 10 * math.log10(power) if power > 0 else -math.inf


class Crop(NamedTuple):
    """One training crop and the number of silent-target offsets drawn before it."""

    audio: np.ndarray  # (1 + sources, channels, frames), mixture first
    silent_skipped: int


class CropDataset(TorchDataset):
    """One random crop per key, the same offset for the mixture and every stem.

    With `activity_db` set, source activity detection as in BSRNN's training: a crop whose
    targets are all quieter than `activity_db` (RMS, dBFS) is redrawn at another offset, up to
    `attempts` offsets in all, and the last one is kept if every draw was silent. The redraws
    come from the key's own generator, so which crop a key yields still depends on nothing else.
    """

    def __init__(
        self,
        items: list[ItemFiles],
        seconds: float,
        sample_rate: int,
        mono: bool,
        seed: int,
        activity_db: float | None = None,
        attempts: int = 10,
    ):
        self.items, self.mono, self.seed = items, mono, seed
        self.sample_rate = sample_rate
        self.frames = round(seconds * sample_rate)
        self.activity_db, self.attempts = activity_db, attempts

    def __len__(self) -> int:
        return len(self.items)

    def spans(self, key: CropKey) -> Iterator[tuple[ItemFiles, int, int]]:
        """The item and the frames [start, stop), at its own rate, of each offset to try."""
        item = self.items[key.item]
        need = math.ceil(self.frames * item.sample_rate / self.sample_rate)
        rng = np.random.default_rng([self.seed, key.epoch, key.index])
        for _ in range(self.attempts):
            start = int(rng.integers(0, max(item.frames - need, 0) + 1))
            yield item, start, start + need

    def span(self, key: CropKey) -> tuple[ItemFiles, int, int]:
        """The first offset of `key`: the crop itself when activity filtering is off."""
        return next(self.spans(key))

    def __getitem__(self, key: CropKey) -> Crop:
        """The crop for `key`; `collate_crops` splits batches into mixture and sources."""
        skipped = -1
        for item, start, stop in self.spans(key):
            skipped += 1
            audio = item.read(start, stop)
            if self.activity_db is None or max(map(rms_db, audio[1:])) >= self.activity_db:
                break
        audio = resample(audio, item.sample_rate, self.sample_rate)
        return Crop(downmix(fit_length(audio, self.frames), self.mono), skipped)


class Batch(NamedTuple):
    mix: torch.Tensor  # (B, C, T)
    targets: torch.Tensor  # (B, S, C, T)
    silent_skipped: int  # silent-target offsets redrawn for this batch's crops


def collate_crops(crops: list[Crop]) -> Batch:
    """Batch crops into mixture and sources, views of one buffer, and sum their redraws.

    A batch of 4 x 5 s crops at 44.1 kHz is 35 MB, above glibc's 32 MB limit for reusing freed
    memory, so every batch is fresh pages. numpy's allocation (which asks for huge pages)
    measured 4x cheaper than torch's (the default collate's torch.stack). In a worker the
    buffer is allocated in shared memory directly, which is where the DataLoader would copy it.
    """
    audio = [crop.audio for crop in crops]
    if get_worker_info() is None:
        batch = torch.from_numpy(np.stack(audio))
    else:
        batch = torch.empty((len(audio), *audio[0].shape)).share_memory_()
        np.stack(audio, out=batch.numpy())
    return Batch(batch[:, 0], batch[:, 1:], sum(crop.silent_skipped for crop in crops))


class RenderedTracks(TorchDataset):
    """Whole held-out rendered items as (mixture, sources), at the model's rate."""

    def __init__(self, items: list[ItemFiles], sample_rate: int, mono: bool):
        self.items, self.sample_rate, self.mono = items, sample_rate, mono

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.items[index]
        audio = downmix(resample(item.read(), item.sample_rate, self.sample_rate), self.mono)
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
        raise TrainError(f"{folder} holds none of musdb's {subset!r} tracks")
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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        track = self.tracks[index]
        audio = track_audio(track, self.sources)
        audio = downmix(resample(audio, int(track.rate), self.sample_rate), self.mono)
        return torch.from_numpy(audio[0]), torch.from_numpy(audio[1:])


def make_loaders(
    dataset: Dataset,
    data: DataConfig,
    loop: LoopConfig,
    sources: Sequence[str],
    sample_rate: int,
    cuda: bool,
    rank: int = 0,
    world: int = 1,
) -> tuple[DataLoader, DataLoader]:
    """Training crops from the selected items; validation on MUSDB or on held-out items.

    With `world` > 1 (DistributedDataParallel) this process gets rank `rank`'s share of every
    training batch and every `world`-th validation track.
    """
    unknown = set(sources) - set(STEM_NAMES)
    if unknown:
        raise TrainError(f"the model's sources {sorted(unknown)} are not dataset stems")
    selected = item_files(dataset.select(data.where), sources)
    if data.valid_root is None:
        held_out = holdout_ids(dataset, data.valid_fraction)
        valid = RenderedTracks(
            [i for i in item_files(dataset, sources) if i.item_id in held_out],
            sample_rate,
            data.mono,
        )
        selected = [i for i in selected if i.item_id not in held_out]
        if not selected:
            raise TrainError(
                f"every selected item is held out for validation (--valid-fraction "
                f"{data.valid_fraction}); select more items or pass --valid-root"
            )
    else:
        tracks = open_musdb(data.valid_root, data.valid_subset)
        valid = MusdbTracks(tracks, sources, sample_rate, data.mono)
    batches = loop.batches_per_epoch or max(1, len(selected) // (loop.batch_size * world))
    crops = batches * loop.batch_size * world
    sampler = CropSampler(len(selected), crops, loop.seed, rank, world, loop.batch_size)
    common: dict[str, Any] = {
        "num_workers": data.workers,
        "pin_memory": cuda,
        "persistent_workers": data.workers > 0,
    }
    train = DataLoader(
        CropDataset(selected, data.segment, sample_rate, data.mono, loop.seed, data.activity_db),
        batch_size=loop.batch_size,
        sampler=sampler,
        collate_fn=collate_crops,
        generator=private_generator(loop.seed),
        **common,
    )
    if world > 1:
        valid = Subset(valid, range(rank, len(valid), world))
    return train, DataLoader(
        valid, batch_size=None, generator=private_generator(loop.seed), **common
    )


def private_generator(seed: int) -> torch.Generator:
    """A DataLoader draws a worker seed per iterator, from torch's default generator unless
    given one. Dropout uses the default generator, and how many iterators a run creates depends
    on --workers (persistent workers reuse theirs), so loaders get their own: the workers draw
    nothing anyway, every crop comes from its key."""
    return torch.Generator().manual_seed(seed)
