"""`mstrain --valid-sdr`: each validation track's uSDR every epoch, as `mstrain eval` scores it."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from factory import make_dataset
from torch.utils.data import DataLoader

from train.cli import main
from train.epochs import track_usdr, validate
from train.evaluate import whole_sdr
from train.models.unet import UNet

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 8000
TINY = [
    "--segment", "0.5", "--batch-size", "2", "--workers", "0", "--valid-fraction", "0.25",
    "--model-arg", f"sample_rate={SR}", "--model-arg", "widths=[4,8,16]",
    "--model-arg", "bottleneck=16",
]  # fmt: skip


def _tracks(count: int = 2, seconds: float = 1.3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mixture, sources) pairs whose length is no multiple of the validation pieces."""
    rng = np.random.default_rng(0)
    tracks = []
    for _ in range(count):
        sources = rng.uniform(-0.3, 0.3, (4, 2, int(seconds * SR))).astype(np.float32)
        tracks.append((torch.from_numpy(sources.sum(0)), torch.from_numpy(sources)))
    return tracks


def test_track_usdr_is_the_eval_formula():
    rng = np.random.default_rng(1)
    targets = rng.normal(size=(4, 2, 1000))
    estimates = targets + rng.normal(scale=0.5, size=targets.shape)
    ours = track_usdr(torch.from_numpy(targets), torch.from_numpy(estimates)).numpy()
    theirs = [whole_sdr(targets[i], estimates[i]) for i in range(4)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_a_silent_model_scores_zero_and_pieces_join_back_to_the_track():
    model = UNet(sample_rate=SR, widths=(4, 8, 16), bottleneck=16)
    loader = DataLoader(_tracks(), batch_size=None)
    frames = int(0.5 * SR)
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.zero_()  # every magnitude 0: silence
    sums = validate(model, loader, frames, 2, torch.device("cpu"), sdr=True)
    assert sums.scores == 2 * 4 and abs(sums.usdr) < 1e-6
    assert sums.pieces == 2 * math.ceil(1.3 / 0.5)
    with torch.no_grad():
        model.output.bias.fill_(0.05)  # a model that outputs something: scored per track
    sums = validate(model, loader, frames, 2, torch.device("cpu"), sdr=True)
    expected = 0.0
    with torch.no_grad():
        for mix, sources in _tracks():
            padded = torch.nn.functional.pad(mix, (0, frames))  # the last piece zero-padded
            starts = range(0, mix.shape[-1], frames)
            joined = torch.cat([model(padded[None, :, i : i + frames])[0] for i in starts], -1)
            expected += float(track_usdr(sources, joined[..., : mix.shape[-1]]).sum())
    assert sums.usdr == pytest.approx(expected, abs=1e-6)
    assert validate(model, loader, frames, 2, torch.device("cpu")).scores == 0


def test_the_run_logs_valid_usdr_only_when_asked(tmp_path):
    data = make_dataset(tmp_path / "data", 8, 1.0, SR)
    runs = {}
    for name, extra in (("plain", []), ("sdr", ["--valid-sdr"])):
        out = tmp_path / name
        result = CliRunner().invoke(
            main, ["--data", str(data), "--out", str(out), "--epochs", "2", *TINY, *extra]
        )
        assert result.exit_code == 0, result.output
        with open(out / "log.csv", newline="") as handle:
            runs[name] = list(csv.DictReader(handle))
        assert ("dB)" in result.output) == bool(extra)
    assert all(row["valid_usdr"] == "" for row in runs["plain"])
    assert all(math.isfinite(float(row["valid_usdr"])) for row in runs["sdr"])
    # the extra pass changes nothing else: same crops, same losses
    for plain, sdr in zip(runs["plain"], runs["sdr"], strict=True):
        assert plain["train_loss"] == sdr["train_loss"]
        assert plain["valid_loss"] == sdr["valid_loss"]
