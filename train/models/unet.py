"""The lightweight U-Net of the source project, on magnitude spectrograms, stereo.

Magnitudes of a Hann STFT (n_fft 1024, hop 512) go in as planes, one per audio channel, so
the network sees both channels of a stereo mixture at once and can use panning cues; it
returns one magnitude plane per (source, channel). Waveforms are rebuilt with the mixture's
phase. Fully convolutional, so any length works: spectrograms are zero-padded to a multiple of
8 on both axes (three 2x poolings) and cropped back.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from train.models import register
from train.models.base import SeparationModel
from train.models.spectral import istft, stft


def conv_block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class Up(nn.Module):
    """Transposed conv (stride 2), concatenate the encoder's skip, conv block, dropout."""

    def __init__(self, channels_in: int, channels_out: int, dropout: float):
        super().__init__()
        self.up = nn.ConvTranspose2d(channels_in, channels_out, 2, stride=2)
        self.block = conv_block(2 * channels_out, channels_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.block(torch.cat([self.up(x), skip], dim=1)))


@register
class UNet(SeparationModel):
    name = "unet"

    def __init__(
        self,
        sources: tuple[str, ...] = ("vocals", "drums", "bass", "other"),
        sample_rate: int = 16000,
        channels: int = 2,
        n_fft: int = 1024,
        hop: int = 512,
        widths: tuple[int, ...] = (8, 16, 32),
        bottleneck: int = 64,
        bottleneck_dropout: float = 0.3,
        decoder_dropout: float = 0.2,
    ):
        super().__init__(
            sources=sources,
            sample_rate=sample_rate,
            channels=channels,
            n_fft=n_fft,
            hop=hop,
            widths=list(widths),
            bottleneck=bottleneck,
            bottleneck_dropout=bottleneck_dropout,
            decoder_dropout=decoder_dropout,
        )
        self.channels, self.n_fft, self.hop = channels, n_fft, hop
        self.multiple = 2 ** len(widths)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        edges = [channels, *widths]
        self.encoder = nn.ModuleList(conv_block(a, b) for a, b in pairwise(edges))
        self.bottleneck = nn.Sequential(
            conv_block(widths[-1], bottleneck), nn.Dropout(bottleneck_dropout)
        )
        ups = [bottleneck, *reversed(widths)]
        self.decoder = nn.ModuleList(Up(a, b, decoder_dropout) for a, b in pairwise(ups))
        self.output = nn.Conv2d(widths[0], len(self.sources) * channels, 1)

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """(..., time) -> complex (..., bins, frames); zero padding at the edges."""
        return stft(audio, self.n_fft, self.hop, self.window, pad_mode="constant")

    def magnitudes(self, mix_magnitude: torch.Tensor) -> torch.Tensor:
        """(B, C, bins, frames) mixture magnitudes -> (B, S, C, bins, frames) estimates.

        The output conv is linear, and `forward` clamps negative magnitudes to zero only when
        it builds waveforms: a ReLU inside the loss would stop all gradient to a source whose
        outputs once went negative everywhere, silencing it for good.
        """
        batch, channels, bins, frames = mix_magnitude.shape
        m = self.multiple
        x = F.pad(mix_magnitude, (0, -frames % m, 0, -bins % m))
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, skip in zip(self.decoder, reversed(skips), strict=True):
            x = up(x, skip)
        x = self.output(x)[..., :bins, :frames]
        return x.reshape(batch, len(self.sources), channels, bins, frames).float()

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        spec = self.stft(mix)
        magnitude = self.magnitudes(spec.abs()).clamp(min=0)
        estimate = magnitude * torch.exp(1j * spec.angle()).unsqueeze(1)
        return istft(estimate, self.n_fft, self.hop, self.window, mix.shape[-1])

    def training_loss(self, mix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """MSE between estimated and true source magnitudes."""
        return F.mse_loss(self.magnitudes(self.stft(mix).abs()), self.stft(targets).abs())
