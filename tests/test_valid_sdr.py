"""`mstrain --valid-sdr`: each validation track's uSDR every epoch, as `mstrain eval` scores it
(the run itself: tests/test_train_run.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from train.epochs import validate
from train.models.unet import UNet
from train.sdr import whole_sdr

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 8000


def _tracks(count: int = 2, seconds: float = 1.3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mixture, sources) pairs whose length is no multiple of the validation pieces."""
    rng = np.random.default_rng(0)
    tracks = []
    for _ in range(count):
        sources = rng.uniform(-0.3, 0.3, (4, 2, int(seconds * SR))).astype(np.float32)
        tracks.append((torch.from_numpy(sources.sum(0)), torch.from_numpy(sources)))
    return tracks


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
            joined = joined[..., : mix.shape[-1]].numpy()
            expected += sum(whole_sdr(s, e) for s, e in zip(sources.numpy(), joined, strict=True))
    assert sums.usdr == pytest.approx(expected, abs=1e-6)
    assert validate(model, loader, frames, 2, torch.device("cpu")).scores == 0
