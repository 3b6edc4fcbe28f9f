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
import soundfile as sf
import soxr
import torch
import xxhash
from torch.utils.data import DataLoader, Sampler, Subset, get_worker_info
from torch.utils.data import Dataset as TorchDataset

from manifests import STEM_NAMES, Dataset
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


@dataclass(frozen=True)
class ItemFiles:
    """Where one rendered item's audio lies: the mixture first, then the model's sources."""

    item_id: str
    paths: tuple[str, ...]
    frames: int
    sample_rate: int
    channels: int

    def read(self, start: int = 0, stop: int | None = None, out: np.ndarray | None = None):
        """Frames [start, stop) of every file as float32 (1 + sources, frames, channels), the
        files' own frame-major layout; frames past the end of a file are zeros.

        Files are decoded straight into `out` (a slot of a batch) when given: a training crop
        is then never copied at all between the decoder and the model.
        """
        stop = self.frames if stop is None else stop
        if out is None:
            out = np.empty((len(self.paths), stop - start, self.channels), dtype=np.float32)
        for path, signal in zip(self.paths, out, strict=True):
            data, _ = sf.read(path, start=start, stop=stop, out=signal)
            signal[len(data) :] = 0.0
        return out


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
            channels=int(row.channels),
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


class Batch(NamedTuple):
    mix: torch.Tensor  # (B, C, T)
    targets: torch.Tensor  # (B, S, C, T)
    silent_skipped: int  # silent-target offsets redrawn for this batch's crops


class CropDataset(TorchDataset):
    """Random crops, one offset shared by the mixture and every stem, fetched a batch at a time.

    The DataLoader hands a whole batch of keys to `__getitems__`, which decodes every file
    straight into one batch buffer (in shared memory inside a worker, where the DataLoader
    would otherwise copy it): stacking per-file arrays and then crops cost as much as the
    decoding did, see benchmarks/loader.py. The buffer is frame-major like the files; the batch
    is a transposed view of it, which the models' STFTs make contiguous (on the GPU, when
    training there). A batch of 4 x 5 s crops at 44.1 kHz is 35 MB, above what glibc recycles
    (32 MB), so each batch is fresh memory whose page faults land in the decoder.

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
        self.signals = len(items[0].paths)
        self.channels = 1 if mono else items[0].channels

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

    def fill(self, key: CropKey, out: np.ndarray) -> int:
        """Write `key`'s crop into `out` (1 + sources, frames, channels); return the redraws."""
        skipped = -1
        for item, start, stop in self.spans(key):
            skipped += 1
            direct = item.sample_rate == self.sample_rate and item.channels == self.channels
            audio = item.read(start, stop, out if direct else None)
            if self.activity_db is None or max(map(rms_db, audio[1:])) >= self.activity_db:
                break
        if not direct:
            audio = resample(audio, item.sample_rate, self.sample_rate, axis=1)
            out[:] = downmix(fit_length(audio, self.frames, axis=1), self.mono, axis=-1)
        return skipped

    def __getitems__(self, keys: list[CropKey]) -> Batch:
        shape = (len(keys), self.signals, self.frames, self.channels)
        if get_worker_info() is None:  # numpy's allocator asks for huge pages: fewer faults
            batch = torch.from_numpy(np.empty(shape, dtype=np.float32))
        else:  # allocated in shared memory, as torch's default collate does (no copy there)
            empty = torch.empty(0)
            storage = empty._typed_storage()._new_shared(math.prod(shape), device=empty.device)
            batch = empty.new(storage).view(shape)
        skipped = sum(self.fill(key, out) for key, out in zip(keys, batch.numpy(), strict=True))
        audio = batch.transpose(-1, -2)
        return Batch(audio[:, 0], audio[:, 1:], skipped)

    def __getitem__(self, key: CropKey) -> Batch:
        """A batch of one crop."""
        return self.__getitems__([key])


def already_batched(batch: Batch) -> Batch:
    """The DataLoader's collate step: `CropDataset.__getitems__` returns whole batches."""
    return batch


class RenderedTracks(TorchDataset):
    """Whole held-out rendered items as (mixture, sources), at the model's rate."""

    def __init__(self, items: list[ItemFiles], sample_rate: int, mono: bool):
        self.items, self.sample_rate, self.mono = items, sample_rate, mono

    def __len__(self) -> int:
        return len(self.items)

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
        collate_fn=already_batched,
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
