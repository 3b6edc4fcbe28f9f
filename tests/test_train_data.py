"""Training data: crops aligned across stems, decided by their key, selected by --where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from factory import make_dataset

from manifests import STEM_NAMES, Dataset, ManifestError
from train.audio import resample, rms_db
from train.config import DataConfig, LoopConfig
from train.crops import CropDataset, CropKey, ItemFiles, item_files
from train.data import make_loaders
from train.validation import holdout_ids

SR = 8000


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    return Dataset.open(make_dataset(tmp_path_factory.mktemp("data"), 8, 2.0, SR))


def loaders(dataset: Dataset, rate: int = SR, **data: object):
    config = DataConfig(root=dataset.root, workers=0, segment=0.5, valid_fraction=0.25)
    for key, value in data.items():
        setattr(config, key, value)
    loop = LoopConfig(out=Path("unused"), batch_size=2, batches_per_epoch=3)
    return make_loaders(dataset, config, loop, STEM_NAMES, rate, cuda=False)


def crop(crops: CropDataset, key: CropKey) -> tuple[torch.Tensor, torch.Tensor]:
    """One crop as the loader batches it: mixture (C, T) and sources (S, C, T)."""
    batch = crops[key]
    return batch.mix[0], batch.targets[0]


def epoch_batches(loader, epoch: int) -> list[torch.Tensor]:
    loader.sampler.set_epoch(epoch)
    return [batch.mix for batch in loader]


def test_mixture_crop_is_the_sum_of_the_stem_crops(dataset):
    """One offset for all files: the factory's mixture is the sum of its stems."""
    crops = CropDataset(item_files(dataset, STEM_NAMES), 0.5, SR, mono=False, seed=0)
    mix, stems = crop(crops, CropKey(item=3, epoch=1, index=7))
    assert mix.shape == (2, SR // 2) and stems.shape == (4, 2, SR // 2)
    assert torch.allclose(mix, stems.sum(dim=0), atol=1e-4)


@pytest.mark.parametrize("rate", [SR, 16000, 11025])
def test_resampled_crops_have_the_exact_length(dataset, rate):
    crops = CropDataset(item_files(dataset, STEM_NAMES), 0.5, rate, mono=True, seed=0)
    mix, stems = crop(crops, CropKey(0, 0, 0))
    assert mix.shape == (1, rate // 2) and stems.shape == (4, 1, rate // 2)


def test_crop_depends_on_its_key_only(dataset):
    crops = CropDataset(item_files(dataset, STEM_NAMES), 0.5, SR, mono=False, seed=0)
    first = crop(crops, CropKey(0, 2, 5))[0]
    assert torch.equal(first, crop(crops, CropKey(0, 2, 5))[0])
    assert not torch.equal(first, crop(crops, CropKey(0, 2, 6))[0])


def test_activity_detection_redraws_crops_with_a_silent_target(tmp_path):
    """Vocals sound in the last second of four only: most first draws are silent."""
    frames = 4 * SR
    t = np.arange(frames) / SR
    vocals = np.where(t >= 3.0, 0.3 * np.sin(2 * np.pi * 440 * t), 0.0)
    paths = []
    for name in ("mixture", "vocals"):
        paths.append(str(tmp_path / f"{name}.wav"))
        sf.write(paths[-1], np.stack([vocals, vocals]).T, SR, subtype="FLOAT")
    item = ItemFiles("x", tuple(paths), frames, SR, channels=2)
    keys = [CropKey(0, 1, index) for index in range(40)]
    plain = [CropDataset([item], 0.5, SR, mono=False, seed=0)[k] for k in keys]
    filtered_crops = CropDataset([item], 0.5, SR, mono=False, seed=0, activity_db=-40.0)
    filtered = [filtered_crops[k] for k in keys]

    def level(batch) -> float:
        return rms_db(batch.targets[0].numpy())

    assert sum(level(b) < -40 for b in plain) > 20
    assert all(b.silent_skipped == 0 for b in plain)
    for first, batch in zip(plain, filtered, strict=True):
        if batch.silent_skipped == 0:  # the first draw was active: the same crop as without SAD
            assert torch.equal(batch.targets, first.targets)
        # active, or silent only after every one of the 10 attempts
        assert level(batch) >= -40 or batch.silent_skipped == 9
    assert sum(level(b) >= -40 for b in filtered) >= 35
    together = filtered_crops.__getitems__(keys)  # as the DataLoader fetches a batch
    assert together.silent_skipped == sum(b.silent_skipped for b in filtered) > 20
    assert torch.equal(together.targets[5], filtered[5].targets[0])
    assert torch.equal(filtered_crops[keys[5]].mix, filtered[5].mix)


def test_reads_past_the_end_are_zeros_and_exact_before(tmp_path):
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (1000, 2)).astype(np.float32)
    sf.write(tmp_path / "a.wav", audio, SR, subtype="FLOAT")
    item = ItemFiles("x", (str(tmp_path / "a.wav"),) * 2, 1000, SR, channels=2)
    out = np.full((2, 300, 2), 7.0, dtype=np.float32)  # a reused batch slot: stale values
    read = item.read(900, 1200, out)
    assert read is out
    np.testing.assert_array_equal(out[:, :100], np.stack([audio[900:]] * 2))
    assert not out[:, 100:].any()


def test_batches_do_not_depend_on_worker_count(dataset):
    single = loaders(dataset)[0]
    workers = loaders(dataset, workers=2)[0]
    for epoch in (1, 2):
        expected = epoch_batches(single, epoch)
        assert len(expected) == 3
        for a, b in zip(expected, epoch_batches(workers, epoch), strict=True):
            assert torch.equal(a, b)
    assert not torch.equal(epoch_batches(single, 1)[0], epoch_batches(single, 2)[0])


def test_where_selects_the_training_items_and_keeps_validation(dataset):
    coherent = set(dataset.items.loc[dataset.items["mode"] == "coherent", "item_id"])
    held_out = holdout_ids(dataset, 0.25)
    train, valid = loaders(dataset, where="mode == 'coherent'")
    assert {i.item_id for i in train.dataset.items} == coherent - held_out
    assert {i.item_id for i in valid.dataset.items} == held_out
    assert {i.item_id for i in loaders(dataset)[1].dataset.items} == held_out


def test_holdout_is_stable_and_never_empty(dataset):
    assert holdout_ids(dataset, 0.25) == holdout_ids(dataset, 0.25)
    assert len(holdout_ids(dataset, 0.25)) == 2
    assert len(holdout_ids(dataset, 0.01)) == 1


def test_empty_selection_is_refused(dataset):
    with pytest.raises(ManifestError, match="selects no items"):
        loaders(dataset, where="mode == 'nonexistent'")


def test_resample_round_trip_keeps_a_tone():
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)[None]
    back = resample(resample(tone, 44100, 16000), 16000, 44100)
    assert back.shape == tone.shape
    assert np.max(np.abs(back - tone)[:, 1000:-1000]) < 1e-2
