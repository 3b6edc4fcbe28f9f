"""Online augmentation in the loader: deterministic per crop, mixture == sum of the sources,
and each transform does what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from factory import make_dataset

from manifests import STEM_NAMES, Dataset
from train.config import DataConfig, LoopConfig
from train.crops import CropDataset, CropKey, item_files
from train.data import make_loaders
from train.online import OnlineAugment, draw_stems, read_stem

SR = 8000
ALL = OnlineAugment(gain=(0.25, 1.25), channel_swap=True, polarity_flip=True, remix=True)
TARGETS = list(range(len(STEM_NAMES)))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    return Dataset.open(make_dataset(tmp_path_factory.mktemp("online"), 8, 2.0, SR))


def _crops(dataset, augment, rate=SR, sources=STEM_NAMES):
    targets = [dataset.stem_names.index(s) for s in sources]
    files = item_files(dataset, sources)
    return CropDataset(files, 0.5, rate, False, 0, augment=augment, targets=targets)


def test_the_mixture_is_the_sum_of_the_augmented_sources(dataset):
    batch = _crops(dataset, ALL)[CropKey(2, 1, 5)]
    assert torch.allclose(batch.mix, batch.targets.sum(dim=1), atol=1e-6)


def test_each_crop_depends_on_its_key_only(dataset):
    crops = _crops(dataset, ALL)
    first = crops[CropKey(2, 1, 5)].mix
    assert torch.equal(first, _crops(dataset, ALL)[CropKey(2, 1, 5)].mix)
    assert not torch.equal(first, crops[CropKey(2, 1, 6)].mix)


def test_augmented_batches_do_not_depend_on_worker_count(dataset):
    def batches(workers):
        config = DataConfig(root=dataset.root, workers=workers, segment=0.5, valid_fraction=0.25)
        config.gain, config.channel_swap, config.polarity_flip, config.remix = (
            (0.25, 1.25),
            True,
            True,
            True,
        )
        loop = LoopConfig(out=Path("unused"), batch_size=2, batches_per_epoch=3)
        loader = make_loaders(dataset, config, loop, STEM_NAMES, SR, cuda=False)[0]
        loader.sampler.set_epoch(1)
        return [b.targets for b in loader]

    for a, b in zip(batches(0), batches(2), strict=True):
        assert torch.equal(a, b)


def test_each_stem_is_its_draw_applied_to_its_own_read(dataset):
    files = item_files(dataset, STEM_NAMES)
    crops = _crops(dataset, ALL)
    key = CropKey(3, 2, 9)
    _, start, stop = crops.span(key)
    draws = draw_stems(ALL, 0, 2, 9, (3, start), 4, [f.frames for f in files], stop - start)
    assert draws[0].item == 3 and draws[0].start == start
    assert len({d.item for d in draws}) > 1, "remix drew every stem from one item"
    targets = crops[key].targets[0].numpy()  # (S, C, T)
    for j, d in enumerate(draws):
        raw = read_stem(files[d.item].stem_paths[j], d.start, stop - start, 2)
        expected = (raw[:, ::-1] if d.swap else raw) * (-d.gain if d.flip else d.gain)
        np.testing.assert_allclose(targets[j], expected.T, atol=1e-6)
        assert 0.25 <= d.gain <= 1.25


def test_off_means_the_plain_crop(dataset):
    plain = CropDataset(item_files(dataset, STEM_NAMES), 0.5, SR, False, 0)
    off = _crops(dataset, OnlineAugment())
    key = CropKey(1, 1, 1)
    assert torch.equal(plain[key].mix, off[key].mix)


def test_a_single_target_mixture_still_holds_every_stem(dataset):
    crops = _crops(dataset, OnlineAugment(gain=(1.0, 1.0)), sources=("vocals",))
    plain = CropDataset(item_files(dataset, STEM_NAMES), 0.5, SR, False, 0)
    key = CropKey(0, 1, 3)
    assert torch.allclose(crops[key].mix, plain[key].mix, atol=1e-4)
    assert crops[key].targets.shape[1] == 1


def test_resampled_augmented_crops_have_the_exact_length(dataset):
    batch = _crops(dataset, ALL, rate=16000)[CropKey(0, 0, 0)]
    assert batch.mix.shape == (1, 2, 8000) and batch.targets.shape == (1, 4, 2, 8000)
