"""Resampling whole training batches on the training device (`--resample-on device`).

The U-Net runs at 16 kHz on datasets rendered at 44.1 kHz. Resampling each crop in the loader
costs a worker most of its time (libsoxr: 21 crops/s against 118 for raw reads, see
docs/performance.md). On a GPU the same work is one strided convolution per batch, so there
the loader reads raw crops at the dataset's rate and the batch is resampled where the model
runs. On a CPU nothing is gained by moving the work from the loader workers into the training
process, and soxr is faster than a convolution there, so `auto` keeps it in the loader.

julius (Demucs' resampler: a windowed-sinc polyphase filter) does the convolution. Its
output is within 2e-5 of soxr's on a 1 kHz tone; on broadband noise the two differ only in
their transition bands, the top few percent below the new Nyquist (-34 dB of the signal).
"""

from __future__ import annotations

import math

import julius
import torch
import torch.nn.functional as F


def resample_in_loader(where: str, cuda: bool) -> bool:
    """Whether the loader (CPU, soxr) resamples crops: `auto` means on CPU, not on CUDA."""
    return where == "loader" or (where == "auto" and not cuda)


def crop_seconds(segment: float, model_rate: int, rate: int) -> float:
    """The crop length at `rate` that a loader resampling to `model_rate` would read.

    The same length gives the same random offsets, so both places of resampling train on the
    same crops; the batch is then cut to the model's frames.
    """
    return math.ceil(round(segment * model_rate) * rate / model_rate) / rate


class BatchResampler:
    """(..., time) batches at the loader's rate -> (..., frames) at the model's rate.

    The identity when both rates are equal, so the loop calls it on every batch.
    """

    def __init__(self, rate: int, new_rate: int, frames: int, device: torch.device):
        self.frames = frames
        self.rate, self.new_rate = rate, new_rate
        common = math.gcd(rate, new_rate)
        self.filter = (
            None
            if rate == new_rate
            else julius.ResampleFrac(rate // common, new_rate // common).to(device)
        )

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        if self.filter is None:
            return audio
        out = self.filter(audio)
        return F.pad(out, (0, max(self.frames - out.shape[-1], 0)))[..., : self.frames]
