"""Training loader throughput against raw soundfile reads and against the U-Net's appetite.

Everything is measured in one run on one temporary dataset (44.1 kHz stereo items of 10 s,
written by tests/factory.py through the real writer, so in the page cache for every path):

- baseline: `soundfile.read(path, start, stop)` of the same crops (mixture + 4 stems, same
  offsets) in one loop, nothing else;
- the mstrain loader (`train.data`, DataLoader with 0, 1, 2 workers) at the dataset's rate,
  whose ratio to the baseline is its overhead (target >= 0.8x), and at the U-Net's 16 kHz,
  which adds resampling: in the loader (soxr, `--resample-on loader`, the CPU default), or
  left to the training device (`--resample-on device`, the CUDA default), whose per-batch
  cost is measured here on the CPU (on a GPU by benchmarks/gpu_check.sh);
- the loader on the same items rendered at 16 kHz (sources resampled once, before the
  render), where no resampling is left at all;
- the crops per second one U-Net training step consumes on this CPU (batch 4, 16 kHz),
  which the loader has to outrun for the model never to wait.

    python benchmarks/loader.py
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from manifests import STEM_NAMES, Dataset
from train.audio import keep_freed_memory
from train.batch_resample import BatchResampler, crop_seconds
from train.config import DataConfig, LoopConfig
from train.crops import CropDataset, CropSampler, item_files
from train.data import make_loaders
from train.models import build_model

FACTORY = Path(__file__).resolve().parent.parent / "tests" / "factory.py"
RATE = 44100
UNET_RATE = 16000


def load_factory():
    spec = importlib.util.spec_from_file_location("factory", FACTORY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raw_reads(crops: CropDataset, sampler: CropSampler) -> float:
    """Crops per second of bare soundfile reads at the offsets the loader would use."""
    started = time.perf_counter()
    for key in sampler:
        item, start, stop = crops.span(key)
        for path in item.paths:
            sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
    return len(sampler) / (time.perf_counter() - started)


def loader_rate(
    dataset: Dataset,
    rate: int,
    workers: int,
    crops: int,
    segment: float,
    where: str = "loader",
    cuda: bool = False,
    batch: int = 4,
) -> float:
    """Crops per second through the training DataLoader, worker start-up excluded."""
    data = DataConfig(
        root=dataset.root, segment=segment, workers=workers, valid_fraction=0.1, resample_on=where
    )
    loop = LoopConfig(out=Path("unused"), batch_size=batch, batches_per_epoch=crops // batch)
    train, _ = make_loaders(dataset, data, loop, STEM_NAMES, rate, cuda=cuda)
    train.sampler.set_epoch(0)
    for _ in train:  # warm-up epoch: starts the persistent workers
        pass
    train.sampler.set_epoch(1)
    started = time.perf_counter()
    count = sum(len(batch.mix) for batch in train)
    return count / (time.perf_counter() - started)


def device_resample_rate(segment: float, batches: int) -> float:
    """Crops per second `BatchResampler` takes 44.1 -> 16 kHz on this CPU (batch 4, the
    mixture and 4 stems, stereo), as the training loop runs it under `--resample-on device`."""
    frames = round(segment * UNET_RATE)
    read = round(crop_seconds(segment, UNET_RATE, RATE) * RATE)
    resampler = BatchResampler(RATE, UNET_RATE, frames, torch.device("cpu"))
    mix, targets = torch.randn(4, 2, read), torch.randn(4, len(STEM_NAMES), 2, read)
    resampler(mix), resampler(targets)
    started = time.perf_counter()
    for _ in range(batches):
        resampler(mix), resampler(targets)
    return 4 * batches / (time.perf_counter() - started)


def unet_rate(segment: float, steps: int) -> float:
    """Crops per second a default U-Net training step (batch 4, 16 kHz, stereo) consumes."""
    torch.manual_seed(0)
    model = build_model("unet", sources=STEM_NAMES, sample_rate=UNET_RATE)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    frames = round(segment * UNET_RATE)
    mix, targets = torch.randn(4, 2, frames), torch.randn(4, len(STEM_NAMES), 2, frames)
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        optimizer.zero_grad()
        model.training_loss(mix, targets).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return 4 / float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--crops", type=int, default=64)
    parser.add_argument("--segment", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = load_factory().make_dataset(Path(folder), args.items, 10.0, RATE, seed=0)
        dataset = Dataset.open(root)
        crops = CropDataset(item_files(dataset, STEM_NAMES), args.segment, RATE, False, 0)
        sampler = CropSampler(len(crops.items), args.crops, seed=0)
        sampler.set_epoch(1)
        raw_reads(crops, sampler)  # page cache warm for both paths
        print(f"{args.crops} crops of {args.segment} s, {args.items} items of 10 s at {RATE} Hz")
        print("glibc malloc defaults:")
        baseline = raw_reads(crops, sampler)
        speed = loader_rate(dataset, RATE, 0, args.crops, args.segment)
        print(f"  raw soundfile reads:       {baseline:7.1f} crops/s  1.00x")
        print(f"  loader {RATE} Hz, 0 workers: {speed:7.1f} crops/s  {speed / baseline:.2f}x")
        keep_freed_memory()
        print("after keep_freed_memory(), as mstrain runs:")
        baseline = raw_reads(crops, sampler)
        print(f"  raw soundfile reads:       {baseline:7.1f} crops/s  1.00x")
        for rate, where, label in (
            (RATE, "loader", f"{RATE} Hz"),
            (UNET_RATE, "loader", f"{UNET_RATE} Hz, soxr in the loader"),
            (UNET_RATE, "device", f"{UNET_RATE} Hz, left to the device"),
        ):
            for workers in (0, 1, 2):
                speed = loader_rate(dataset, rate, workers, args.crops, args.segment, where)
                print(
                    f"  loader {label}, {workers} workers: {speed:7.1f} crops/s"
                    f"  {speed / baseline:.2f}x"
                )
        on_cpu = device_resample_rate(args.segment, 8)
        print(
            f"  device resampling on this CPU: {on_cpu:7.1f} crops/s  {on_cpu / baseline:.2f}x"
            f"  (julius, batch 4, {torch.get_num_threads()} torch threads)"
        )
        low = load_factory().make_dataset(Path(folder) / "16k", args.items, 10.0, UNET_RATE, 0)
        for workers in (0, 1, 2):
            speed = loader_rate(Dataset.open(low), UNET_RATE, workers, args.crops, args.segment)
            print(
                f"  loader, items rendered at {UNET_RATE} Hz, {workers} workers: "
                f"{speed:7.1f} crops/s  {speed / baseline:.2f}x"
            )
        consumed = unet_rate(args.segment, args.steps)
        print(
            f"  U-Net train step consumes: {consumed:7.1f} crops/s  {consumed / baseline:.2f}x"
            f"  (batch 4, {UNET_RATE} Hz, {torch.get_num_threads()} torch threads)"
        )


if __name__ == "__main__":
    main()
