"""Several one-source models used as one: how a `--target all` run of BSRNN separates.

BSRNN learns one target per model, so `mstrain --model bsrnn --target all` trains four runs
side by side (RUN/vocals, RUN/drums, ...). Evaluation and separation take one model with all
sources; this stacks the four, each seeing the same mixture.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from train.models.base import SeparationModel


class StackedModel(SeparationModel):
    name = "stack"

    def __init__(self, parts: Sequence[SeparationModel]):
        rates = {part.sample_rate for part in parts}
        channels = {part.init_kwargs.get("channels") for part in parts}
        if len(rates) != 1 or len(channels) != 1:
            raise ValueError(
                f"models to stack must share one sample rate and channel count, got rates "
                f"{sorted(rates)} and channels {sorted(channels, key=str)}"
            )
        sources = tuple(source for part in parts for source in part.sources)
        super().__init__(sources=sources, sample_rate=rates.pop(), channels=channels.pop())
        self.parts = nn.ModuleList(parts)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(mix) for part in self.parts], dim=1)

    def training_loss(self, mix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Sum of each part's loss on its own sources."""
        losses, start = [], 0
        for part in self.parts:
            stop = start + len(part.sources)
            losses.append(part.training_loss(mix, targets[:, start:stop]))
            start = stop
        return torch.stack(losses).sum()
