"""Training crops: where each item's files are, which crop each key means, and batches.

Training reads a rendered dataset only through `manifests.Dataset` and only the frames of each
crop. Every crop is decided by (seed, epoch, index), never by a worker's state, so a run gives
the same batches at any `--workers` and after `--resume`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler, get_worker_info

from manifests import Dataset
from train.audio import downmix, fit_length, resample, rms_db
from train.errors import TrainError
from train.online import OnlineAugment, apply, draw_stems, read_stem


@dataclass(frozen=True)
class ItemFiles:
    """Where one rendered item's audio lies: the mixture first, then the model's sources."""

    item_id: str
    paths: tuple[str, ...]
    frames: int
    sample_rate: int
    channels: int
    stem_paths: tuple[str, ...] = ()
    """Every stem of the item in the dataset's stem order (what online augmentation reads)."""

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
            stem_paths=tuple(
                str(dataset.path(paths.at[row.item_id, s])) for s in dataset.stem_names
            ),
        )
        for row in dataset.items.itertuples()
    ]


def check_items(items: Sequence[ItemFiles], seconds: float, sample_rate: int) -> None:
    """Each file's header against the manifest, and the segment against the items.

    A file that is missing, unreadable, or shorter than its row says would otherwise be
    zero-padded into training targets without a word; one header read per file finds it
    (not a full `msaug verify`, which also hashes and decodes every frame).
    """
    if not items:
        raise TrainError("the dataset (after --where) has no items to train on")
    for item in items:
        for path in item.paths:
            try:
                info = sf.info(path)
            except (sf.SoundFileError, OSError) as exc:
                raise TrainError(
                    f"{path} is missing or unreadable ({exc}); run `msaug verify` on the dataset"
                ) from None
            found = (info.frames, info.samplerate, info.channels)
            if found != (item.frames, item.sample_rate, item.channels):
                raise TrainError(
                    f"{path} holds {found[0]} frames x {found[2]} channels at {found[1]} Hz, its "
                    f"manifest row says {item.frames} x {item.channels} at {item.sample_rate} Hz; "
                    "run `msaug verify` on the dataset"
                )
    check_segment(items, seconds, sample_rate)


def check_segment(items: Sequence[Any], seconds: float, sample_rate: int) -> None:
    """Refuse a `--segment` longer than the shortest item (anything with `item_id`, `frames`
    and `sample_rate`): its crops would be zero-padded into training targets."""
    shortest = min(items, key=lambda i: i.frames / i.sample_rate)
    if shortest.frames / shortest.sample_rate < seconds - 1 / sample_rate:
        raise TrainError(
            f"--segment {seconds} s is longer than the shortest item ({shortest.item_id}, "
            f"{shortest.frames / shortest.sample_rate:.3g} s); crops would be zero-padded: "
            "use a shorter --segment"
        )


def epoch_batches(batches_per_epoch: int | None, items: int, batch_size: int, world: int) -> int:
    """Batches per process and epoch: the recipe's, or one pass over the items."""
    return batches_per_epoch or max(1, items // (batch_size * world))


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
        augment: OnlineAugment | None = None,
        targets: Sequence[int] = (),
    ):
        """`targets` are the model's sources as indices into each item's `stem_paths`; they
        are needed only with `augment` on (`train.online`)."""
        self.items, self.mono, self.seed = items, mono, seed
        self.augment = augment if augment is not None and augment.active else None
        self.targets = list(targets)
        self.lengths = [item.frames for item in items]  # remix draws offsets in any item
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
        if self.augment is not None:
            return self.fill_augmented(key, out)
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

    def fill_augmented(self, key: CropKey, out: np.ndarray) -> int:
        """`fill` with online augmentation: every stem read and transformed on its own, the
        mixture their sum. Activity detection looks at the augmented targets."""
        assert self.augment is not None
        skipped = -1
        for item, start, stop in self.spans(key):
            skipped += 1
            draws = draw_stems(
                self.augment,
                self.seed,
                key.epoch,
                key.index,
                (key.item, start),
                len(item.stem_paths),
                self.lengths,
                stop - start,
            )
            stems = np.stack(
                [
                    apply(
                        d,
                        read_stem(
                            self.items[d.item].stem_paths[j], d.start, stop - start, item.channels
                        ),
                    )
                    for j, d in enumerate(draws)
                ]
            )
            targets = stems[self.targets]
            if self.activity_db is None or max(map(rms_db, targets)) >= self.activity_db:
                break
        audio = np.concatenate([stems.sum(axis=0, keepdims=True), targets])
        if item.sample_rate != self.sample_rate:
            audio = fit_length(
                resample(audio, item.sample_rate, self.sample_rate, axis=1), self.frames, axis=1
            )
        out[:] = downmix(audio, self.mono, axis=-1)
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


def private_generator(seed: int) -> torch.Generator:
    """A DataLoader draws a worker seed per iterator, from torch's default generator unless
    given one. Dropout uses the default generator, and how many iterators a run creates depends
    on --workers (persistent workers reuse theirs), so loaders get their own: the workers draw
    nothing anyway, every crop comes from its key."""
    return torch.Generator().manual_seed(seed)
