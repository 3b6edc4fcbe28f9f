"""Forward + backward step time and peak memory of SE-BSRNN against plain BSRNN.

Both models are measured in the same run, each in a fresh process so that one's peak memory
cannot hide the other's; the SE/plain ratio is the number to compare across machines. The
default is the paper size on a batch of 2 x 3 s stereo at 44.1 kHz (the source reports ~44 s
and ~10 GB per step on 2 CPU cores); --dim / --num-layers measure reduced sizes.

    python benchmarks/model_step.py --device cpu
    python benchmarks/model_step.py --device cuda --steps 5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from dataclasses import asdict, dataclass

import torch

from train.models import build_model

MODELS = ("bsrnn", "se-bsrnn")


@dataclass(frozen=True)
class StepConfig:
    device: str
    batch: int
    seconds: float
    sample_rate: int
    source: str
    dim: int
    num_layers: int
    checkpointing: bool
    warmup: int
    steps: int


@dataclass(frozen=True)
class StepResult:
    parameters: int
    seconds_per_step: float
    cpu_seconds_per_step: float  # all threads; steadier than wall time on a shared machine
    peak_mib: float
    model_mib: float  # weights and batch, before any step


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, config: StepConfig) -> StepResult:
    """Runs in a fresh process: peak RSS (CPU) or peak allocation (CUDA) covers this model only."""
    device = torch.device(config.device)
    generator = torch.Generator().manual_seed(0)
    model = build_model(
        name,
        sources=[config.source],
        sample_rate=config.sample_rate,
        dim=config.dim,
        num_layers=config.num_layers,
        checkpointing=config.checkpointing,
    ).to(device)
    length = round(config.seconds * config.sample_rate)
    mix = (0.1 * torch.randn(config.batch, 2, length, generator=generator)).to(device)
    target = (0.1 * torch.randn(config.batch, 1, 2, length, generator=generator)).to(device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model.training_loss(mix, target).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        model_mib = torch.cuda.memory_allocated(device) / 2**20
    else:
        model_mib = _rss_mib()
    for _ in range(config.warmup):
        step()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(config.steps):
        step()
    elapsed = (time.perf_counter() - start) / config.steps
    cpu = (time.process_time() - cpu_start) / config.steps
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mib = _rss_mib()
    return StepResult(model.parameter_count(), elapsed, cpu, peak_mib, model_mib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--source", default="vocals")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=12)
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--steps", type=int, default=1, help="timed steps (mean is reported)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    config = StepConfig(
        device=args.device,
        batch=args.batch,
        seconds=args.seconds,
        sample_rate=args.sample_rate,
        source=args.source,
        dim=args.dim,
        num_layers=args.num_layers,
        checkpointing=args.checkpointing,
        warmup=args.warmup,
        steps=args.steps,
    )
    print(", ".join(f"{key}={value}" for key, value in asdict(config).items()))
    memory = "peak allocated" if args.device.startswith("cuda") else "peak RSS"
    print(
        f"{'model':<10} {'params':>12} {'s/step':>9} {'cpu s/step':>11} "
        f"{memory + ' MiB':>18} {'model+data MiB':>15}"
    )
    results = {}
    context = mp.get_context("spawn")
    for name in MODELS:
        with context.Pool(1) as pool:
            result = pool.apply(measure, (name, config))
        results[name] = result
        print(
            f"{name:<10} {result.parameters:>12,} {result.seconds_per_step:>9.3f} "
            f"{result.cpu_seconds_per_step:>11.3f} "
            f"{result.peak_mib:>18,.0f} {result.model_mib:>15,.0f}"
        )
    plain, se = results["bsrnn"], results["se-bsrnn"]
    print(
        f"SE/plain: time x{se.seconds_per_step / plain.seconds_per_step:.3f}, "
        f"cpu time x{se.cpu_seconds_per_step / plain.cpu_seconds_per_step:.3f}, "
        f"{memory} x{se.peak_mib / plain.peak_mib:.3f}"
    )


if __name__ == "__main__":
    main()
