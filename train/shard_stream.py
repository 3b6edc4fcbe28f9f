"""Training crops and validation songs streamed from shards (`mstrain --data SHARDS`).

Shards are read front to back, so crops cannot be drawn from any item at any time as the
folder loader does (`train.crops`). Instead, per epoch:

- the shards that hold a selected item are put in an order drawn from (seed, epoch), and the
  k-th of the `world x workers` loader workers (rank-major) takes every (world x workers)-th of
  them: ranks and workers read disjoint shards (with fewer shards than workers, workers share);
- each worker streams its shards and keeps up to `buffer` decoded items in memory; every crop
  is cut from an item drawn at random from that buffer, at a random offset, and an item leaves
  the buffer once it has given its share of crops (enough for the worker's quota of batches
  in one pass over its shards; more passes if it has very few items);
- every draw comes from (seed, epoch, worker), so a run gives the same batches for the same
  `--workers`, and after `--resume`, but not across worker counts (the folder loader's crops
  do not depend on them). The buffer is the shuffle: a larger one mixes crops of more items
  into each batch, at `buffer` decoded items of memory per worker.

Online augmentation works as in the folder loader (`train.online`); remixing draws the other
stems from items in the same buffer. Validation songs are streamed from the shards too, each
rank (and worker) taking every n-th song.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from manifests.listing import ListedFile
from train.audio import downmix, fit_length, resample, rms_db
from train.crops import Batch
from train.online import OnlineAugment, apply, draw_stems
from train.shard_source import ShardSource, stream_items

DEFAULT_BUFFER = 8


@dataclass(frozen=True)
class StreamItem:
    """One item as the stream knows it: its shard and the files to decode, in signal order
    (mixture then the model's sources, or every stem when augmenting online)."""

    item_id: str
    shard: str
    files: tuple[ListedFile, ...]

    @property
    def frames(self) -> int:
        return int(self.files[0].frames)  # type: ignore[arg-type]

    @property
    def sample_rate(self) -> int:
        return int(self.files[0].sample_rate)  # type: ignore[arg-type]


def worker_slot(rank: int, world: int) -> tuple[int, int, int, int]:
    """(this loader worker's global index, their count, its index in this process, workers
    per process)."""
    info = get_worker_info()
    workers, worker = (info.num_workers, info.id) if info else (1, 0)
    return rank * workers + worker, world * workers, worker, workers


def assign_shards(shards: Sequence[str], seed: int, epoch: int, slot: int, slots: int) -> list[str]:
    """The shards loader worker `slot` of `slots` reads in `epoch`, in order."""
    order = [shards[i] for i in np.random.default_rng([seed, epoch]).permutation(len(shards))]
    mine = order[slot::slots]
    return mine or [order[slot % len(order)]]


def _stream(source: ShardSource, shards: list[str], items: list[StreamItem]):
    by_shard: dict[str, dict[str, list[ListedFile]]] = {}
    for item in items:
        by_shard.setdefault(item.shard, {})[item.item_id] = list(item.files)
    for shard in shards:
        yield from stream_items(source, shard, by_shard.get(shard, {}))


class _Buffered:
    """An item held in a worker's shuffle buffer: (signals, frames, channels) audio."""

    def __init__(self, item: StreamItem, audio: list[np.ndarray], crops: int):
        self.item, self.audio, self.left = item, np.stack(audio), crops


class ShardCrops(IterableDataset):
    """Batches of random crops; `batches` per process and epoch, split among its workers."""

    def __init__(
        self,
        source: ShardSource,
        items: list[StreamItem],
        seconds: float,
        sample_rate: int,
        mono: bool,
        seed: int,
        batch_size: int,
        batches: int,
        rank: int = 0,
        world: int = 1,
        activity_db: float | None = None,
        augment: OnlineAugment | None = None,
        targets: Sequence[int] = (),
        buffer: int = DEFAULT_BUFFER,
        attempts: int = 10,
    ):
        self.source, self.items, self.mono, self.seed = source, items, mono, seed
        self.sample_rate, self.frames = sample_rate, round(seconds * sample_rate)
        self.batch_size, self.batches, self.rank, self.world = batch_size, batches, rank, world
        self.activity_db, self.attempts, self.buffer = activity_db, attempts, max(1, buffer)
        self.augment = augment if augment is not None and augment.active else None
        self.targets = list(targets)
        self.shards = sorted({item.shard for item in items})
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called in the main process before each epoch; workers are not persistent, so each
        epoch's workers start from a copy that has it."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    @property
    def crops(self) -> int:
        return self.batches * self.batch_size * self.world

    def __iter__(self) -> Iterator[Batch]:
        slot, slots, worker, workers = worker_slot(self.rank, self.world)
        quota = self.batches // workers + (worker < self.batches % workers)
        if quota == 0:
            return
        shards = assign_shards(self.shards, self.seed, self.epoch, slot, slots)
        chosen = set(shards)
        mine = [item for item in self.items if item.shard in chosen]
        per_item = math.ceil(quota * self.batch_size / len(mine))
        rng = np.random.default_rng([self.seed, self.epoch, slot])
        crops = self._crops(shards, mine, per_item, rng, slot, slots)  # endless
        for _ in range(quota):
            taken = [next(crops) for _ in range(self.batch_size)]
            audio = torch.from_numpy(np.stack([crop for crop, _ in taken])).transpose(-1, -2)
            yield Batch(audio[:, 0], audio[:, 1:], sum(skipped for _, skipped in taken))

    def _crops(self, shards, mine, per_item, rng, slot, slots) -> Iterator[tuple[np.ndarray, int]]:
        """Endless: passes over this worker's shards through the shuffle buffer."""
        counter, by_id = 0, {item.item_id: item for item in mine}
        while True:
            held: list[_Buffered] = []
            for item_id, audio in _stream(self.source, shards, mine):
                held.append(_Buffered(by_id[item_id], audio, per_item))
                while len(held) >= self.buffer:
                    yield self._cut(held, rng, counter * slots + slot)
                    counter += 1
            while held:
                yield self._cut(held, rng, counter * slots + slot)
                counter += 1

    def _cut(self, held: list[_Buffered], rng: np.random.Generator, index: int):
        """One crop from a random buffered item (redrawn offsets while targets are silent)."""
        pick = int(rng.integers(len(held)))
        entry = held[pick]
        need = math.ceil(self.frames * entry.item.sample_rate / self.sample_rate)
        skipped = -1
        for _ in range(self.attempts):
            skipped += 1
            start = int(rng.integers(0, max(entry.item.frames - need, 0) + 1))
            audio = self._signals(held, pick, start, need, index)
            if self.activity_db is None or max(map(rms_db, audio[1:])) >= self.activity_db:
                break
        entry.left -= 1
        if entry.left == 0:
            held.pop(pick)
        rate = entry.item.sample_rate
        audio = fit_length(resample(audio, rate, self.sample_rate, axis=1), self.frames, axis=1)
        return np.ascontiguousarray(downmix(audio, self.mono, axis=-1)), skipped

    def _signals(self, held, pick, start, need, index) -> np.ndarray:
        """(1 + sources, frames, channels): the crop, or its online-augmented remix."""
        entry = held[pick]
        if self.augment is None:
            return _window(entry.audio, start, need)
        lengths = [h.item.frames for h in held]
        draws = draw_stems(
            self.augment,
            self.seed,
            self.epoch,
            index,
            (pick, start),
            len(entry.audio),
            lengths,
            need,
        )
        stems = np.stack(
            [apply(d, _window(held[d.item].audio[j], d.start, need)) for j, d in enumerate(draws)]
        )
        return np.concatenate([stems.sum(axis=0, keepdims=True), stems[self.targets]])


def _window(audio: np.ndarray, start: int, frames: int) -> np.ndarray:
    """Frames [start, start + frames) along axis -2, zero-padded past the end."""
    part = audio[..., start : start + frames, :]
    return fit_length(part, frames, axis=-2)


class ShardSongs(IterableDataset):
    """The dataset's validation songs, whole, from the shards: (mixture, sources) tensors at
    the model's rate, each process and worker taking every n-th song."""

    def __init__(
        self,
        source: ShardSource,
        songs: list[StreamItem],
        sample_rate: int,
        mono: bool,
        rank: int = 0,
        world: int = 1,
        real: bool = True,
    ):
        self.source, self.songs, self.sample_rate, self.mono = source, songs, sample_rate, mono
        self.rank, self.world, self.real = rank, world, real

    def describe(self) -> str:
        if not self.real:
            return (
                f"{len(self.songs)} held-out rendered items (--valid-fraction: augmented, from "
                "the training songs), streamed from the shards"
            )
        names = ", ".join(song.item_id for song in self.songs[:5])
        more = f" and {len(self.songs) - 5} more" if len(self.songs) > 5 else ""
        return (
            f"{len(self.songs)} real songs of the dataset's validation split, streamed from its "
            f"shards: {names}{more}"
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        slot, slots, _, _ = worker_slot(self.rank, self.world)
        mine = self.songs[slot::slots]
        shards = sorted({song.shard for song in mine})
        rates = {song.item_id: song.sample_rate for song in mine}
        for item_id, audio in _stream(self.source, shards, mine):
            tracks = np.stack(audio).transpose(0, 2, 1)
            tracks = downmix(resample(tracks, rates[item_id], self.sample_rate), self.mono)
            yield torch.from_numpy(tracks[0]), torch.from_numpy(tracks[1:])
