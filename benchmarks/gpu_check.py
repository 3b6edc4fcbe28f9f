"""The GPU check behind benchmarks/gpu_check.sh: models, loader and DDP on one CUDA device.

1. Step time and peak memory of the U-Net, BSRNN and SE-BSRNN at their recipes' shapes, with
   and without AMP (float16 autocast and GradScaler, as `mstrain` trains on CUDA) and, for
   the band-split models, with and without gradient checkpointing; first and steady steps
   apart (`benchmarks/model_step.py`, each in a fresh process).
2. The loader's crops per second with the default workers, on rendered 44.1 kHz items, for
   each model's crops (the U-Net's resampled on the device, `--resample-on auto`), against
   the crops per second each model's default training step (AMP on) consumes.
3. A one-process nccl DDP run of `mstrain` under torchrun (process group, DDP wrapper,
   SyncBatchNorm, all-reduce), two epochs and a resume.

Prints one Markdown table. `--device cpu --quick` runs the same code at toy sizes on a CPU,
to check the script itself where no GPU is lent.

    python benchmarks/gpu_check.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from loader import load_factory, loader_rate
from model_step import StepConfig, StepResult, measure_fresh, recipe_shape

from manifests import Dataset
from train.batch_resample import BatchResampler, crop_seconds
from train.config import DataConfig

MODELS = ("unet", "bsrnn", "se-bsrnn")
RATE = 44100


def step_configs(device: str, quick: bool) -> list[StepConfig]:
    out = []
    for name in MODELS:
        batch, frames, rate = recipe_shape(name)
        base = StepConfig(
            device=device,
            model=name,
            batch=batch,
            frames=frames // 8 if quick else frames,
            sample_rate=rate,
            source="vocals",
            dim=16 if quick else 128,
            num_layers=1 if quick else 12,
            checkpointing=False,
            amp=False,
            steps=1 if quick else 3,
        )
        for amp in (False, True) if device == "cuda" else (False,):
            for ckpt in (False, True) if name != "unet" else (False,):
                out.append(replace(base, amp=amp, checkpointing=ckpt))
    return out


def device_resample(device: str, segment: float, batches: int = 20) -> float:
    """Crops per second of the U-Net's batch resampling (44.1 -> 16 kHz) on `device`."""
    frames, read = round(segment * 16000), round(crop_seconds(segment, 16000, RATE) * RATE)
    resampler = BatchResampler(RATE, 16000, frames, torch.device(device))
    batch = torch.randn(4, 5, 2, read, device=device)
    resampler(batch)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(batches):
        resampler(batch)
    if device == "cuda":
        torch.cuda.synchronize()
    return 4 * batches / (time.perf_counter() - started)


def ddp_smoke(data: Path, out: Path, device: str) -> str:
    """Two epochs, then a resume to a third, of a one-process torchrun: the nccl path."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command = [
        *launcher, "--nproc-per-node", "1", "-m", "train", "--data", str(data),
        "--out", str(out), "--device", device, "--segment", "1", "--batch-size", "4",
        "--batches-per-epoch", "4", "--workers", "2", "--valid-fraction", "0.25",
    ]  # fmt: skip
    started = time.perf_counter()
    for epochs, more in ((2, []), (3, ["--resume"])):
        done = subprocess.run(
            [*command, "--epochs", str(epochs), *more],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"FAILED (exit {done.returncode}): {' | '.join(tail)}"
    epochs = (out / "log.csv").read_text().count("\n") - 1
    group = "1 process" if ", 1 process" in done.stdout else "no process group"
    return f"ok: {group}, {epochs} epochs logged, {time.perf_counter() - started:.0f} s"


def table(
    steps: dict[StepConfig, StepResult], loader: dict[str, float], extra: list[tuple[str, str]]
) -> str:
    lines = [
        "| model | batch | AMP | ckpt | first step s | steady s | peak MiB | eats crops/s "
        "| loader crops/s (default workers) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for config, result in steps.items():
        lines.append(
            f"| {config.model} | {config.batch} x {config.frames} @ {config.sample_rate} "
            f"| {'on' if config.amp else 'off'} | {'on' if config.checkpointing else 'off'} "
            f"| {result.first_seconds:.3f} | {result.seconds:.4f} | {result.peak_mib:,.0f} "
            f"| {result.crops_per_second:,.3g} | {loader.get(config.model, float('nan')):,.1f} |"
        )
    lines += ["", "| check | result |", "|---|---|", *(f"| {k} | {v} |" for k, v in extra)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="toy sizes, to check the script")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch sees no CUDA device (pass --device cpu --quick)")
    extra = [("torch", torch.__version__)]
    if args.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        extra += [
            ("device", f"{props.name}, {props.total_memory / 2**30:.0f} GiB"),
            ("CUDA / cuDNN", f"{torch.version.cuda} / {torch.backends.cudnn.version()}"),
        ]
    steps = {}
    for config in step_configs(args.device, args.quick):
        steps[config] = measure_fresh(config)
        print(f"measured {config.model} amp={config.amp} ckpt={config.checkpointing}", flush=True)
    workers = DataConfig.__dataclass_fields__["workers"].default
    loader = {}
    with tempfile.TemporaryDirectory() as folder:
        items = 4 if args.quick else 16
        root = load_factory().make_dataset(Path(folder) / "data", items, 8.0, RATE, seed=0)
        dataset = Dataset.open(root)
        crops = 16 if args.quick else 128
        for name in MODELS:
            batch, frames, rate = recipe_shape(name)
            loader[name] = loader_rate(
                dataset, rate, workers, crops, frames / rate, "auto", args.device == "cuda", batch
            )
            print(f"loader for {name}: {loader[name]:.1f} crops/s", flush=True)
        extra.append(
            (
                "U-Net batch resampling 44.1 -> 16 kHz on the device",
                f"{device_resample(args.device, 5.0):,.0f} crops/s",
            )
        )
        extra.append(("loader workers", str(workers)))
        extra.append(("DDP smoke run", ddp_smoke(root, Path(folder) / "ddp", args.device)))
    print(table(steps, loader, extra))


if __name__ == "__main__":
    main()
