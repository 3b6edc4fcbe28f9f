"""Squeeze-and-excitation over a sequence: the channel reweighting that SE-BSRNN adds."""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    """Scale each feature by a gate computed from its mean over the sequence.

    In SE-BSRNN the sequence is time (one gate per band and batch item) after the time BLSTM and
    the bands (one gate per frame) after the band BLSTM, so the gate summarises what the BLSTM
    just aggregated and lets the block emphasise features across the whole axis.
    """

    def __init__(self, features: int, reduction: int):
        super().__init__()
        if reduction < 1 or features % reduction:
            raise ValueError(
                f"se_reduction must be a positive divisor of the feature size {features}, "
                f"got {reduction}"
            )
        self.squeeze = nn.Linear(features, features // reduction)
        self.excite = nn.Linear(features // reduction, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, sequence, features) -> same shape, features scaled by gates in (0, 1)."""
        summary = x.mean(dim=1)
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(summary))))
        return x * gate.unsqueeze(1)
