"""What every separation model offers the loop, evaluation and separation.

Models take and return waveforms, so the loop, chunked inference and `separate` never care
whether a model works on magnitudes (U-Net) or complex spectrograms (BSRNN); each model owns its
spectral transform and its training loss.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class SeparationModel(nn.Module):
    """Base class: waveform in (batch, channels, time), waveform per source out.

    Subclasses call `super().__init__(sources=..., sample_rate=..., **their kwargs)` with every
    constructor argument, so `init_kwargs` rebuilds the model from a checkpoint alone.
    """

    name: str = ""
    # True for models that learn one source each (BSRNN): `--target all` trains one per source
    single_target: ClassVar[bool] = False
    # the source's training recipe for this model: what a flag left unset means
    # (config section, field) -> value; see `train.config.with_recipe`
    recipe: ClassVar[dict[tuple[str, str], Any]] = {
        ("loop", "batch_size"): 4,
        ("data", "segment"): 5.0,
        ("optim", "weight_decay"): 1e-5,
    }

    def __init__(self, sources: tuple[str, ...], sample_rate: int, **kwargs: Any):
        super().__init__()
        self.sources = tuple(sources)
        self.sample_rate = int(sample_rate)
        self.init_kwargs: dict[str, Any] = {
            "sources": list(self.sources),
            "sample_rate": self.sample_rate,
            **kwargs,
        }

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """(batch, channels, time) -> (batch, len(sources), channels, time), same length."""
        raise NotImplementedError

    def training_loss(self, mix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Scalar loss for mix (B, C, T) and targets (B, S, C, T), in the model's own domain."""
        raise NotImplementedError
