"""--resample-on: crops resampled batch-wise on the training device equal the loader's."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from factory import make_dataset

from manifests import STEM_NAMES, Dataset
from train.audio import resample
from train.batch_resample import BatchResampler, resample_in_loader
from train.cli import main
from train.config import DataConfig, LoopConfig
from train.data import crop_rate, make_loaders

pytestmark = pytest.mark.usefixtures("one_thread")

SR, MODEL_RATE = 11025, 8000


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), 6, 1.0, SR)


def train_loader(root: Path, resample_on: str, cuda: bool = False):
    config = DataConfig(
        root=root, workers=0, segment=0.5, valid_fraction=0.25, resample_on=resample_on
    )
    loop = LoopConfig(out=Path("unused"), batch_size=2, batches_per_epoch=2, seed=3)
    loader = make_loaders(Dataset.open(root), config, loop, STEM_NAMES, MODEL_RATE, cuda)[0]
    loader.sampler.set_epoch(1)
    return loader


def test_auto_resamples_in_the_loader_on_cpu_and_on_the_device_on_cuda():
    assert resample_in_loader("auto", cuda=False)
    assert not resample_in_loader("auto", cuda=True)
    assert resample_in_loader("loader", cuda=True)
    assert not resample_in_loader("device", cuda=False)


def test_the_device_gets_crops_at_the_dataset_rate_and_resamples_them_to_the_loaders(data):
    """Same crops either way: the device path's batches, resampled by julius, match soxr's at
    exactly the model's frames. The factory's audio is broadband noise, and the two filters'
    transition bands differ in the top few percent below the new Nyquist: -34 dB here."""
    in_loader, on_device = train_loader(data, "loader"), train_loader(data, "device")
    assert (crop_rate(in_loader), crop_rate(on_device)) == (MODEL_RATE, SR)
    frames = MODEL_RATE // 2
    resampler = BatchResampler(SR, MODEL_RATE, frames, torch.device("cpu"))
    for loaded, raw in zip(in_loader, on_device, strict=True):
        assert raw.mix.shape[-1] == 5513  # ceil(4000 * 11025 / 8000), as the loader reads
        for want, got in ((loaded.mix, raw.mix), (loaded.targets, raw.targets)):
            got = resampler(got)
            assert got.shape == want.shape and got.shape[-1] == frames
            inner = slice(64, -64)  # the edges differ: each resampler pads its own way
            error = (got - want)[..., inner].pow(2).mean() / want[..., inner].pow(2).mean()
            assert 10 * torch.log10(error) < -30


def test_a_tone_resampled_on_the_device_is_the_tone_at_the_new_rate():
    t = np.arange(SR) / SR
    tone = torch.from_numpy(np.sin(2 * np.pi * 440 * t)).float().expand(3, 2, -1)
    out = BatchResampler(SR, MODEL_RATE, MODEL_RATE, torch.device("cpu"))(tone)
    expected = np.sin(2 * np.pi * 440 * np.arange(MODEL_RATE) / MODEL_RATE)
    assert out.shape == (3, 2, MODEL_RATE)
    assert np.abs(out[..., 200:-200].numpy() - expected[200:-200]).max() < 1e-3
    soxr = resample(tone.numpy(), SR, MODEL_RATE)
    assert np.abs(out[..., 200:-200].numpy() - soxr[..., 200:-200]).max() < 1e-3


def test_equal_rates_pass_batches_through_untouched():
    batch = torch.randn(2, 4, 2, 100)
    assert BatchResampler(SR, SR, 100, torch.device("cpu"))(batch) is batch


def test_a_run_resampling_on_the_device_trains_and_is_deterministic(data, tmp_path):
    args = [
        "--data", data, "--epochs", 1, "--segment", 0.5, "--batch-size", 2, "--workers", 0,
        "--valid-fraction", 0.25, "--model-arg", f"sample_rate={MODEL_RATE}",
        "--model-arg", "widths=[4,8,16]", "--model-arg", "bottleneck=16",
        "--resample-on", "device",
    ]  # fmt: skip
    logs = []
    for name in ("a", "b"):
        result = CliRunner().invoke(main, [str(a) for a in [*args, "--out", tmp_path / name]])
        assert result.exit_code == 0, result.output
        with open(tmp_path / name / "log.csv", newline="") as handle:
            logs.append([row["train_loss"] for row in csv.DictReader(handle)])
    assert logs[0] == logs[1] and len(logs[0]) == 1


def test_an_unknown_place_is_refused_by_the_flag(data, tmp_path):
    result = CliRunner().invoke(
        main, ["--data", str(data), "--out", str(tmp_path / "r"), "--resample-on", "gpu"]
    )
    assert result.exit_code == 2 and "--resample-on" in result.output
