"""BandSplitRNN and SE-BSRNN: one complex-mask model per target source on a band-split STFT.

The spectrogram is cut into sub-bands whose widths follow the target (`bands.py`), each band is
normalised and projected to `dim` features, dual-path BLSTM blocks model time and then bands,
and a per-band MLP estimates a complex mask that multiplies the mixture STFT. SE-BSRNN adds a
squeeze-and-excitation gate after every BLSTM. Stereo is "complex as channels": a band's input
is the real and imaginary parts of both channels, 4 real values per bin.

The structure and sizes follow the unofficial implementation the source project used, with one
deliberate change: its LayerNorms normalise over (features, 263 frames) and so carry per-frame
affine weights and accept only 263-frame inputs; here they normalise features only, so any
length works. docs/models.md derives the parameter counts and how they relate to the source's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from train.models import register
from train.models.bands import band_widths
from train.models.base import SeparationModel
from train.models.se import SqueezeExcitation
from train.models.spectral import istft, stft

logger = logging.getLogger(__name__)


def apply_complex_mask(mask: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
    """Multiply `spec` by the mask whose last axis holds (real, imaginary) parts.

    A complex product, not a magnitude gain: the mask both scales and rotates each bin, which is
    how BSRNN corrects the mixture's phase instead of reusing it.
    """
    return torch.view_as_complex(mask.float().contiguous()) * spec  # float32 under autocast


def spectral_l1_loss(estimate: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha * L1 of magnitudes + (1 - alpha) * (L1 of real parts + L1 of imaginary parts)."""
    magnitude = F.l1_loss(estimate.abs(), target.abs())
    real = F.l1_loss(estimate.real, target.real)
    imaginary = F.l1_loss(estimate.imag, target.imag)
    return alpha * magnitude + (1 - alpha) * (real + imaginary)


class BandSplit(nn.Module):
    """Per band: LayerNorm over the band's real values, then Linear to `dim` features."""

    def __init__(self, widths: Sequence[int], channels: int, dim: int):
        super().__init__()
        self.widths = tuple(widths)
        self.projections = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width * channels * 2), nn.Linear(width * channels * 2, dim))
            for width in self.widths
        )

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(batch, channels, bins, frames) complex -> (batch, bands, frames, dim)."""
        values = torch.view_as_real(spec).permute(0, 3, 2, 1, 4)  # batch, frames, bins, ch, re/im
        bands = values.split(self.widths, dim=2)
        return torch.stack(
            [
                project(band.reshape(*band.shape[:2], -1))
                for project, band in zip(self.projections, bands, strict=True)
            ],
            dim=1,
        )


class ResidualBLSTM(nn.Module):
    """Norm, BLSTM, Linear back to `dim` (and the SE gate in SE-BSRNN), added to the input."""

    def __init__(self, dim: int, hidden: int, se_reduction: int | None):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden, dim)
        self.gate = nn.Identity() if se_reduction is None else SqueezeExcitation(dim, se_reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, sequence, dim) -> same shape."""
        return x + self.gate(self.project(self.rnn(self.norm(x))[0]))


class DualPathBlock(nn.Module):
    """A BLSTM along time (shared by all bands), then one along the bands (shared by frames)."""

    def __init__(self, dim: int, hidden: int, se_reduction: int | None):
        super().__init__()
        self.over_time = ResidualBLSTM(dim, hidden, se_reduction)
        self.over_bands = ResidualBLSTM(dim, hidden, se_reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, bands, frames, dim) -> same shape."""
        batch, bands, frames, dim = x.shape
        x = self.over_time(x.reshape(batch * bands, frames, dim))
        x = x.reshape(batch, bands, frames, dim).transpose(1, 2).reshape(batch * frames, bands, dim)
        x = self.over_bands(x)
        return x.reshape(batch, frames, bands, dim).transpose(1, 2)


class MaskEstimator(nn.Module):
    """Per band: LayerNorm, MLP (tanh), then a GLU with its own projection, as in the source.

    The GLU's Linear(out, 2 * out) is the unofficial implementation's choice (the paper folds the
    GLU into the MLP's last layer); it is kept so the parameter counts match the source's.
    """

    def __init__(self, widths: Sequence[int], channels: int, dim: int, hidden: int):
        super().__init__()
        self.channels = channels
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(dim),
                nn.Linear(dim, hidden),
                nn.Tanh(),
                nn.Linear(hidden, width * channels * 2),
                nn.Linear(width * channels * 2, width * channels * 4),
                nn.GLU(dim=-1),
            )
            for width in widths
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, bands, frames, dim) -> mask (batch, channels, bins, frames, re/im)."""
        batch, _, frames, _ = x.shape
        bands = [
            head(x[:, index]).reshape(batch, frames, -1, self.channels, 2)
            for index, head in enumerate(self.heads)
        ]
        return torch.cat(bands, dim=2).permute(0, 3, 2, 1, 4)


class _BandSplitModel(SeparationModel):
    """Shared body of `bsrnn` and `se-bsrnn`; `se_reduction=None` leaves out the SE gates."""

    single_target = True
    # The source's BSRNN recipe (facts.md): batch 2 of 263 STFT frames (~3 s at 44.1 kHz),
    # 10,000 batches per epoch, source activity detection on, no weight decay (the facts give
    # weight decay for the U-Net only). -50 dBFS is msaug's threshold for "silent".
    recipe: ClassVar[dict[tuple[str, str], Any]] = {
        ("loop", "batch_size"): 2,
        ("data", "segment"): 262 * 512 / 44100,
        ("loop", "batches_per_epoch"): 10_000,
        ("data", "activity_db"): -50.0,
        ("optim", "weight_decay"): 0.0,
    }

    def __init__(
        self,
        sources: Sequence[str],
        sample_rate: int,
        *,
        se_reduction: int | None,
        channels: int = 2,
        n_fft: int = 2048,
        hop_length: int = 512,
        dim: int = 128,
        num_layers: int = 12,
        hidden: int | None = None,
        mlp_hidden: int | None = None,
        alpha: float = 0.5,
        checkpointing: bool = False,
    ):
        sources = tuple(sources)
        if len(sources) != 1:
            raise ValueError(
                f"{self.name} separates one target per model, got sources={list(sources)}; "
                "train one model per source"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"{self.name}: alpha must be in [0, 1], got {alpha}")
        hidden = 2 * dim if hidden is None else hidden
        mlp_hidden = 4 * dim if mlp_hidden is None else mlp_hidden
        se = {} if se_reduction is None else {"se_reduction": se_reduction}
        super().__init__(
            sources=sources,
            sample_rate=sample_rate,
            channels=channels,
            n_fft=n_fft,
            hop_length=hop_length,
            dim=dim,
            num_layers=num_layers,
            hidden=hidden,
            mlp_hidden=mlp_hidden,
            alpha=alpha,
            checkpointing=checkpointing,
            **se,
        )
        self.channels = channels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.alpha = alpha
        self.checkpointing = checkpointing
        widths = band_widths(sources[0], sample_rate, n_fft)
        self.band_split = BandSplit(widths, channels, dim)
        self.blocks = nn.ModuleList(
            DualPathBlock(dim, hidden, se_reduction) for _ in range(num_layers)
        )
        self.mask_estimator = MaskEstimator(widths, channels, dim, mlp_hidden)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        logger.info(
            "%s for %s: %d bands, %s parameters",
            self.name,
            sources[0],
            len(widths),
            f"{self.parameter_count():,}",
        )

    @property
    def num_bands(self) -> int:
        return len(self.band_split.widths)

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """(..., time) -> complex (..., bins, frames)."""
        return stft(audio, self.n_fft, self.hop_length, self.window)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """complex (..., bins, frames) -> (..., length)."""
        return istft(spec, self.n_fft, self.hop_length, self.window, length)

    def estimate_mask(self, spec: torch.Tensor) -> torch.Tensor:
        """Mixture STFT (batch, channels, bins, frames) -> mask (..., re/im) of the same bins."""
        x = self.band_split(spec)
        for block in self.blocks:
            if self.checkpointing and torch.is_grad_enabled():
                # nothing in a block draws random numbers, so there is no RNG state to replay
                x = checkpoint(block, x, use_reentrant=False, preserve_rng_state=False)
            else:
                x = block(x)
        return self.mask_estimator(x)

    def _check_mix(self, mix: torch.Tensor) -> None:
        if mix.ndim != 3 or mix.shape[1] != self.channels:
            raise ValueError(
                f"{self.name} expects mix shaped (batch, {self.channels}, time), "
                f"got {tuple(mix.shape)}"
            )
        if mix.shape[-1] <= self.n_fft // 2:
            raise ValueError(
                f"{self.name} needs more than n_fft // 2 = {self.n_fft // 2} samples, "
                f"got {mix.shape[-1]}"
            )

    def _separate_spec(self, mix: torch.Tensor) -> torch.Tensor:
        self._check_mix(mix)
        spec = self.stft(mix)
        return apply_complex_mask(self.estimate_mask(spec), spec)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return self.istft(self._separate_spec(mix), mix.shape[-1]).unsqueeze(1)

    def training_loss(self, mix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        expected = (mix.shape[0], 1, *mix.shape[1:])
        if tuple(targets.shape) != expected:
            raise ValueError(
                f"{self.name} expects targets shaped {expected} for mix {tuple(mix.shape)}, "
                f"got {tuple(targets.shape)}"
            )
        target_spec = self.stft(targets[:, 0])
        return spectral_l1_loss(self._separate_spec(mix), target_spec, self.alpha)


@register
class BandSplitRNN(_BandSplitModel):
    name = "bsrnn"

    def __init__(self, sources: Sequence[str], sample_rate: int, **kwargs):
        super().__init__(sources, sample_rate, se_reduction=None, **kwargs)


@register
class SEBandSplitRNN(_BandSplitModel):
    name = "se-bsrnn"

    def __init__(self, sources: Sequence[str], sample_rate: int, se_reduction: int = 8, **kwargs):
        super().__init__(sources, sample_rate, se_reduction=se_reduction, **kwargs)
