"""One epoch's two passes: training on random crops, then validation on whole tracks.

Validation cuts every track into consecutive `--segment` pieces and sums the model's own loss
over them (what `best.pt` and early stopping follow). With `--valid-sdr` it also separates the
pieces into waveforms and scores each whole track's uSDR, the number `mstrain eval` reports:
a loss on magnitudes can fall while the separation does not improve, and a model that
outputs silence scores 0 dB here whatever its loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from train.batch_resample import BatchResampler
from train.models.base import SeparationModel
from train.sdr import whole_sdr


def train_one_epoch(
    step: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    clip: float,
    resample: BatchResampler,
    show_progress: bool = True,
) -> tuple[float, int, int]:
    """Summed loss (x crops), crops and silent-target redraws; mixed precision on CUDA.
    Batches reach the model's rate through `resample` (the identity unless left to the
    device)."""
    step.train()
    total, count, skipped = 0.0, 0, 0
    batches = tqdm(loader, desc="train", leave=False, disable=None if show_progress else True)
    for mix, targets, silent_skipped in batches:
        skipped += silent_skipped
        mix = resample(mix.to(device, non_blocking=True))
        targets = resample(targets.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
            loss = step(mix, targets)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(step.parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
        total += loss.item() * len(mix)
        count += len(mix)
    return total, count, skipped


def chunks(audio: torch.Tensor, frames: int) -> torch.Tensor:
    """(..., time) -> (pieces, ..., frames): consecutive pieces, the last one zero-padded."""
    padded = F.pad(audio, (0, -audio.shape[-1] % frames))
    return padded.unfold(-1, frames, frames).movedim(-2, 0)


@dataclass
class ValidationSums:
    """Sums that add up over processes (`distributed.sum_over_processes`)."""

    loss: float = 0.0
    pieces: int = 0
    usdr: float = 0.0
    """uSDR summed over tracks and sources; `scores` of them."""
    scores: int = 0

    def as_list(self) -> list[float]:
        return [self.loss, self.pieces, self.usdr, self.scores]


@torch.no_grad()
def validate(
    model: SeparationModel,
    loader: DataLoader,
    frames: int,
    batch_size: int,
    device: torch.device,
    sdr: bool = False,
) -> ValidationSums:
    """The loss over every `frames`-long piece of every track and, with `sdr`, each track's
    uSDR per source from the pieces' estimates joined back (the padding cut off)."""
    model.eval()
    sums = ValidationSums()
    for mix, targets in loader:
        estimates = []
        mix_parts, target_parts = (chunks(x, frames).split(batch_size) for x in (mix, targets))
        for mix_part, target_part in zip(mix_parts, target_parts, strict=True):
            mix_part = mix_part.to(device)
            loss = model.training_loss(mix_part, target_part.to(device))
            sums.loss += loss.item() * len(mix_part)
            sums.pieces += len(mix_part)
            if sdr:
                estimates.append(model(mix_part).cpu())
        if sdr:
            joined = torch.cat(estimates).movedim(0, -2).flatten(-2)[..., : mix.shape[-1]]
            for target, estimate in zip(targets.numpy(), joined.numpy(), strict=True):
                sums.usdr += whole_sdr(target, estimate)
                sums.scores += 1
    return sums
