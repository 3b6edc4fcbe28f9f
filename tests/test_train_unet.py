"""The U-Net: any length in, same length out; it can learn; it rebuilds from init_kwargs."""

from __future__ import annotations

import pytest
import torch
from fitting import fit_one_batch

from manifests import STEM_NAMES
from train.models import build_model

TINY = {"sample_rate": 8000, "widths": [4, 8, 16], "bottleneck": 16}
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_unet(**kwargs):
    torch.manual_seed(0)
    return build_model("unet", **{"sources": STEM_NAMES, **TINY, **kwargs})


@pytest.mark.parametrize("length", [1, 511, 1001, 4097, 12345])
def test_odd_lengths_come_back_at_their_length(length):
    model = tiny_unet().eval()
    mix = torch.randn(2, 2, length)
    with torch.no_grad():
        out = model(mix)
    assert out.shape == (2, len(STEM_NAMES), 2, length)
    assert torch.isfinite(out).all()


def test_spectrogram_is_padded_to_a_multiple_of_8_and_cropped_back():
    model = tiny_unet().eval()
    magnitude = torch.rand(1, 2, 513, 13)
    with torch.no_grad():
        assert model.magnitudes(magnitude).shape == (1, len(STEM_NAMES), 2, 513, 13)


def test_mono_model_and_single_target():
    model = tiny_unet(channels=1, sources=["vocals"]).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 1, 4000)).shape == (3, 1, 1, 4000)


def test_overfits_one_batch():
    """A loss that cannot fall on one fixed batch means a broken model or loss."""
    generator = torch.Generator().manual_seed(1)
    t = torch.arange(4000) / 8000
    tones = torch.stack([torch.sin(2 * torch.pi * f * t) for f in (440.0, 110.0, 55.0, 220.0)])
    gains = torch.rand(4, len(STEM_NAMES), 2, 1, generator=generator)
    targets = 0.2 * gains * tones[None, :, None, :]
    mix = targets.sum(dim=1)
    model = tiny_unet(bottleneck_dropout=0.0, decoder_dropout=0.0)
    losses = fit_one_batch(model, mix, targets, steps=40, lr=1e-2)
    assert losses[0] / losses[-1] > 20


def test_rebuilds_from_init_kwargs():
    model = tiny_unet().eval()
    copy = build_model("unet", **model.init_kwargs).eval()
    copy.load_state_dict(model.state_dict())
    mix = torch.randn(1, 2, 3000)
    with torch.no_grad():
        assert torch.equal(model(mix), copy(mix))
