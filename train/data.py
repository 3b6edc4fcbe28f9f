"""Loaders: random crops of rendered items for training, whole real tracks for validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import DataLoader, Subset

from manifests import STEM_NAMES, Dataset
from train.batch_resample import crop_seconds, resample_in_loader
from train.config import DataConfig, LoopConfig
from train.crops import (
    CropDataset,
    CropSampler,
    already_batched,
    check_items,
    epoch_batches,
    item_files,
    private_generator,
)
from train.errors import TrainError
from train.online import OnlineAugment
from train.shard_loaders import shard_loaders
from train.shard_source import ShardedDataset
from train.shard_stream import ShardCrops
from train.songs import SongsDataset
from train.validation import MusdbTracks, RenderedTracks, holdout_ids, open_musdb


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

    Training crops come at `sample_rate` (the model's), or at the dataset's own rate when
    `--resample-on` leaves resampling to the training device (`crop_rate`); validation songs
    always come at `sample_rate`. With `world` > 1 (DistributedDataParallel) this process
    gets rank `rank`'s share of every training batch and every `world`-th validation track.
    """
    unknown = set(sources) - set(STEM_NAMES)
    if unknown:
        raise TrainError(f"the model's sources {sorted(unknown)} are not dataset stems")
    rate, seconds = sample_rate, data.segment
    if not resample_in_loader(data.resample_on, cuda):
        rate = dataset.sample_rate
        seconds = crop_seconds(data.segment, sample_rate, rate)
    if isinstance(dataset, ShardedDataset):
        crops = (rate, seconds)
        return shard_loaders(dataset, data, loop, sources, sample_rate, crops, cuda, rank, world)
    songs = set(dataset.items.loc[dataset.items["role"] == "valid", "item_id"])
    every = item_files(dataset, sources)  # once: each path is resolved (`Dataset.path`)
    chosen = set(dataset.select(data.where).items["item_id"]) - songs
    selected = [i for i in every if i.item_id in chosen]
    check_items(selected, data.segment, sample_rate)
    valid_root = data.valid_root
    if valid_root is None and isinstance(dataset, SongsDataset):
        valid_root = dataset.root  # songs: validate on the root's own validation songs
    if valid_root is None and songs:  # the dataset's own validation split: real songs
        real = [i for i in every if i.item_id in songs]
        valid = RenderedTracks(real, sample_rate, data.mono, real=True)
    elif valid_root is None:
        held_out = holdout_ids(dataset, data.valid_fraction)
        valid = RenderedTracks(
            [i for i in every if i.item_id in held_out],
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
        tracks = open_musdb(valid_root, data.valid_subset)
        valid = MusdbTracks(tracks, sources, sample_rate, data.mono)
    batches = epoch_batches(loop.batches_per_epoch, len(selected), loop.batch_size, world)
    crops = batches * loop.batch_size * world
    sampler = CropSampler(len(selected), crops, loop.seed, rank, world, loop.batch_size)
    common: dict[str, Any] = {
        "num_workers": data.workers,
        "pin_memory": cuda,
        "persistent_workers": data.workers > 0,
    }
    train = DataLoader(
        CropDataset(
            selected,
            seconds,
            rate,
            data.mono,
            loop.seed,
            data.activity_db,
            augment=OnlineAugment.of(data),
            targets=[dataset.stem_names.index(s) for s in sources],
        ),
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


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """The epoch that decides a training loader's crops (its sampler's, or its stream's)."""
    target = loader.dataset if isinstance(loader.dataset, ShardCrops) else loader.sampler
    target.set_epoch(epoch)  # type: ignore[union-attr]


def crop_rate(loader: DataLoader) -> int:
    """The sample rate of a training loader's crops (the model's, unless left to the device)."""
    return loader.dataset.sample_rate  # type: ignore[attr-defined]


def training_counts(loader: DataLoader) -> tuple[int, int]:
    """Items and crops per epoch of a training loader (all processes together)."""
    if isinstance(loader.dataset, ShardCrops):
        return len(loader.dataset.items), loader.dataset.crops
    return len(loader.dataset), len(loader.sampler)  # type: ignore[arg-type]
