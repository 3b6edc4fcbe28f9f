"""The STFT pair every spectral model uses, over any leading axes, in float32 under autocast.

Both the U-Net and BSRNN use a Hann window and `normalized=True` (scaled by 1/sqrt(n_fft)),
which keeps spectrogram values, and so the losses, on the scale of the waveform.
"""

from __future__ import annotations

import torch


def stft(
    audio: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, pad_mode: str = "reflect"
) -> torch.Tensor:
    """(..., time) -> complex (..., bins, frames)."""
    with torch.autocast(audio.device.type, enabled=False):
        spec = torch.stft(
            audio.reshape(-1, audio.shape[-1]).float(),
            n_fft,
            hop,
            window=window,
            normalized=True,
            pad_mode=pad_mode,
            return_complex=True,
        )
    return spec.reshape(*audio.shape[:-1], *spec.shape[-2:])


def istft(
    spec: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, length: int
) -> torch.Tensor:
    """complex (..., bins, frames) -> (..., length)."""
    with torch.autocast(spec.device.type, enabled=False):
        audio = torch.istft(
            spec.reshape(-1, *spec.shape[-2:]),
            n_fft,
            hop,
            window=window,
            normalized=True,
            length=length,
        )
    return audio.reshape(*spec.shape[:-2], length)
