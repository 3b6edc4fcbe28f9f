"""Separating whole tracks in bounded memory, shared by `mstrain eval` and `mstrain separate`.

A track is cut into fixed-size chunks that overlap; each chunk goes through the model alone,
and overlapping outputs are cross-faded with linear ramps. Model activations therefore never
exceed one chunk whatever the track's length; only the output buffers grow with it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from train.audio import fit_length, resample
from train.errors import TrainError
from train.models.base import SeparationModel

CHUNK_SECONDS = 10.0
OVERLAP = 0.25


def check_overlap(overlap: float) -> None:
    """Refuse an overlap outside [0, 1): at 1 or more no chunk would move the next one on.

    The commands check it before the model loads, so a typo costs no separation.
    """
    if not 0 <= overlap < 1:  # also refuses NaN
        raise TrainError(
            f"--overlap is the fraction of a chunk shared with the next, 0 <= overlap < 1 "
            f"(default {OVERLAP:g}); got {overlap:g}"
        )


def chunk_frames(chunk_seconds: float, overlap: float, sample_rate: int) -> tuple[int, int]:
    """(frames per chunk, frames shared by neighbours) at the model's rate.

    Rounding can turn a valid but tiny chunk or an overlap near 1 into no frames or no hop,
    which would divide by zero in `overlap_add`; both are refused with the option to change.
    """
    check_overlap(overlap)
    frames = round(chunk_seconds * sample_rate)
    if frames < 1:
        raise TrainError(
            f"--chunk-seconds {chunk_seconds:g} holds no frame at the model's {sample_rate} Hz"
        )
    shared = round(overlap * frames)
    if shared >= frames:
        raise TrainError(
            f"--overlap {overlap:g} of a {frames}-frame chunk leaves no hop between chunks; "
            "pass a smaller fraction or a longer --chunk-seconds"
        )
    return frames, shared


def crossfade_window(frames: int, overlap: int) -> torch.Tensor:
    """Ones with linear ramps over `overlap` frames at both ends, never zero.

    Overlap-add divides by the summed windows, so where two chunks overlap their ramps sum to
    one, and where only one chunk covers the track (its start and end) its own weight cancels.
    """
    window = torch.ones(frames)
    ramp = torch.arange(1, overlap + 1) / (overlap + 1)
    window[:overlap] = ramp
    window[frames - overlap :] = ramp.flip(0)
    return window


@torch.inference_mode()
def overlap_add(
    model: SeparationModel, mix: torch.Tensor, frames: int, overlap: int, device: torch.device
) -> torch.Tensor:
    """(channels, time) at the model's rate -> (sources, channels, time)."""
    length = mix.shape[-1]
    hop = frames - overlap
    count = 1 + max(0, math.ceil((length - frames) / hop))
    mix = torch.nn.functional.pad(mix, (0, (count - 1) * hop + frames - length))
    window = crossfade_window(frames, overlap)
    out = torch.zeros(len(model.sources), *mix.shape)
    weight = torch.zeros(mix.shape[-1])
    for start in range(0, count * hop, hop):
        piece = mix[None, :, start : start + frames].to(device)
        out[..., start : start + frames] += model(piece)[0].float().cpu() * window
        weight[start : start + frames] += window
    return (out / weight)[..., :length]


def separate(
    model: SeparationModel,
    audio: np.ndarray,
    sample_rate: int,
    device: torch.device,
    chunk_seconds: float = CHUNK_SECONDS,
    overlap: float = OVERLAP,
) -> np.ndarray:
    """(channels, time) at any rate -> (sources, channels, time) at the same rate and length.

    `overlap` is the fraction of each chunk shared with the next: more overlap smooths chunk
    seams at the cost of more forward passes (1 / (1 - overlap) times as many as abutting).

    A model that declares `channels` gets what it expects: a mono model separates each channel
    of a stereo song on its own; a stereo model gets a mono song twice and its outputs averaged.
    """
    model.eval()
    channels, length = audio.shape
    wanted = model.init_kwargs.get("channels", channels)
    mix = torch.from_numpy(resample(audio.astype(np.float32), sample_rate, model.sample_rate))
    frames, overlap_frames = chunk_frames(chunk_seconds, overlap, model.sample_rate)

    def run(part: torch.Tensor) -> torch.Tensor:
        return overlap_add(model, part, frames, overlap_frames, device)

    if wanted == channels:
        estimate = run(mix)
    elif wanted == 1:
        estimate = torch.cat([run(mix[c : c + 1]) for c in range(channels)], dim=1)
    elif channels == 1:
        estimate = run(mix.expand(wanted, -1)).mean(dim=1, keepdim=True)
    else:
        raise TrainError(f"the model takes {wanted} channels; the audio has {channels}")
    return fit_length(resample(estimate.numpy(), model.sample_rate, sample_rate), length)
