"""Loaders for packed shards: `make_loaders`' choices, streamed (`train.shard_stream`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from torch.utils.data import DataLoader, Subset
from torch.utils.data import Dataset as TorchDataset
from tqdm import tqdm

from manifests.listing import audio_files
from train.config import DataConfig, LoopConfig
from train.crops import check_segment, epoch_batches, private_generator
from train.errors import TrainError
from train.online import OnlineAugment
from train.shard_source import ShardedDataset
from train.shard_stream import ShardCrops, ShardSongs, StreamItem
from train.validation import MusdbTracks, holdout_ids, open_musdb


def shard_loaders(
    dataset: ShardedDataset,
    data: DataConfig,
    loop: LoopConfig,
    sources: Sequence[str],
    sample_rate: int,
    crops: tuple[int, float],
    cuda: bool,
    rank: int,
    world: int,
) -> tuple[DataLoader, DataLoader]:
    """`make_loaders` for packed shards (`train.shard_stream`): same selection, validation
    choice, batches per epoch and augmentation; workers are not persistent, so each epoch's
    start from the dataset's current epoch. `crops` is the training crops' (rate, seconds)."""
    assert dataset.source is not None
    augment = OnlineAugment.of(data)
    files = audio_files(dataset)
    shard_of = {i: shard["name"] for shard in dataset.shards for i in shard["items"]}
    signals = [0, *(1 + dataset.stem_names.index(s) for s in sources)]

    def stream_items(ids: Collection[str], every_stem: bool) -> list[StreamItem]:
        pick = range(len(dataset.stem_names) + 1)[1:] if every_stem else signals
        missing = sorted(set(ids) - set(shard_of))
        if missing:
            raise TrainError(
                f"item {missing[0]} is in no shard of {dataset.source.base}; repack it"
            )
        return [
            StreamItem(i, shard_of[i], tuple(files[i][k] for k in pick))
            for i in dataset.items["item_id"]
            if i in ids
        ]

    songs = set(dataset.items.loc[dataset.items["role"] == "valid", "item_id"])
    chosen = set(dataset.select(data.where).items["item_id"]) - songs
    if data.valid_root is not None:
        valid: TorchDataset = MusdbTracks(
            open_musdb(data.valid_root, data.valid_subset), sources, sample_rate, data.mono
        )
        if world > 1:
            valid = Subset(valid, range(rank, len(valid), world))
    else:
        held_out = songs or holdout_ids(dataset, data.valid_fraction)
        chosen -= held_out
        songs_in = stream_items(held_out, False)
        valid = ShardSongs(
            dataset.source, songs_in, sample_rate, data.mono, rank, world, bool(songs)
        )
    items = stream_items(chosen, augment.active)
    if not items:
        raise TrainError("the dataset (after --where) has no items to train on")
    shards = len({item.shard for item in items})
    slots = world * max(data.workers, 1)
    if shards < slots and rank == 0:
        tqdm.write(
            f"note: {shards} shards hold the selected items, fewer than the {slots} loader "
            "workers of all processes: some read the same shards, so their crops repeat "
            "items; pack with a smaller --shard-size for disjoint reads"
        )
    check_segment(items, data.segment, sample_rate)
    batches = epoch_batches(loop.batches_per_epoch, len(items), loop.batch_size, world)
    train = ShardCrops(
        dataset.source,
        items,
        crops[1],
        crops[0],
        data.mono,
        loop.seed,
        loop.batch_size,
        batches,
        rank,
        world,
        data.activity_db,
        augment,
        targets=[dataset.stem_names.index(s) for s in sources],
    )
    common: dict[str, Any] = {
        "num_workers": data.workers,
        "pin_memory": cuda,
        "generator": private_generator(loop.seed),
    }
    return (
        DataLoader(train, batch_size=None, **common),
        DataLoader(valid, batch_size=None, **common),
    )
