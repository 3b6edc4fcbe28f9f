"""Shared by the model tests: a few Adam steps on one fixed batch."""

from __future__ import annotations

import torch

from train.models.base import SeparationModel


def fit_one_batch(
    model: SeparationModel, mix: torch.Tensor, targets: torch.Tensor, steps: int, lr: float
) -> list[float]:
    """The training loss before each of `steps` Adam steps on (mix, targets)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.training_loss(mix, targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
