"""Forward + backward step time and peak memory per model, plain and gradient-checkpointed.

Every (model, checkpointing, AMP) combination runs in a fresh process, so one's peak memory
cannot hide another's and each pays its own first step (fresh activation memory, allocator
warm-up, cuDNN planning), which is reported apart from the steady steps after it. Each model
steps on its training recipe's batch (BSRNN: 2 x 263 STFT frames of stereo at 44.1 kHz, the
source's shapes; U-Net: 4 x 5 s at 16 kHz) unless --batch / --seconds say otherwise. Ratios
are taken within one run: checkpointed/plain per model, SE/plain.

    python benchmarks/model_step.py --device cpu
    python benchmarks/model_step.py --device cpu --models bsrnn --num-layers 2 --steps 2
    python benchmarks/model_step.py --device cuda --models unet bsrnn se-bsrnn --amp both
"""

from __future__ import annotations

import argparse
import inspect
import multiprocessing as mp
import resource
import time
from dataclasses import dataclass, replace

import torch

from manifests import STEM_NAMES
from train.models import MODELS, build_model

SPLIT_MODELS = ("bsrnn", "se-bsrnn")  # take --dim, --num-layers and checkpointing
CHOICES = {"off": (False,), "on": (True,), "both": (False, True)}


@dataclass(frozen=True)
class StepConfig:
    device: str
    model: str
    batch: int
    frames: int
    sample_rate: int
    source: str
    dim: int
    num_layers: int
    checkpointing: bool
    amp: bool
    steps: int


@dataclass(frozen=True)
class StepResult:
    parameters: int
    first_seconds: float  # the process's first step: fresh memory, allocator and kernel set-up
    seconds: float  # mean of the steady steps after it
    cpu_seconds: float  # all threads, steady steps; steadier than wall time on a shared machine
    peak_mib: float  # CPU: peak RSS of the process; CUDA: peak allocated by torch
    model_mib: float  # weights and batch, before any step
    batch: int

    @property
    def crops_per_second(self) -> float:
        """What the model eats: the loader has to deliver this for the model never to wait."""
        return self.batch / self.seconds


def recipe_shape(name: str) -> tuple[int, int, int]:
    """(batch, frames, sample rate) of a model's training recipe."""
    cls = MODELS[name]
    rate_default = inspect.signature(cls).parameters["sample_rate"].default
    rate = 44100 if rate_default is inspect.Parameter.empty else int(rate_default)
    batch = int(cls.recipe[("loop", "batch_size")])
    return batch, round(cls.recipe[("data", "segment")] * rate), rate


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _build(config: StepConfig) -> torch.nn.Module:
    if config.model in SPLIT_MODELS:
        return build_model(
            config.model,
            sources=[config.source],
            sample_rate=config.sample_rate,
            dim=config.dim,
            num_layers=config.num_layers,
            checkpointing=config.checkpointing,
        )
    return build_model(config.model, sources=list(STEM_NAMES), sample_rate=config.sample_rate)


def measure(config: StepConfig) -> StepResult:
    """Runs in a fresh process: peak RSS (CPU) or peak allocation (CUDA) covers this model."""
    device = torch.device(config.device)
    torch.manual_seed(0)
    model = _build(config).to(device)
    sources = len(getattr(model, "sources", ()))
    generator = torch.Generator().manual_seed(0)
    mix = (0.1 * torch.randn(config.batch, 2, config.frames, generator=generator)).to(device)
    target = 0.1 * torch.randn(config.batch, sources, 2, config.frames, generator=generator)
    target = target.to(device)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=config.amp):
            loss = model.training_loss(mix, target)
        scaler.scale(loss).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        model_mib = torch.cuda.memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    else:
        model_mib = _rss_mib()
    started = time.perf_counter()
    step()
    first = time.perf_counter() - started
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(config.steps):
        step()
    seconds = (time.perf_counter() - started) / config.steps
    cpu = (time.process_time() - cpu_started) / config.steps
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = _rss_mib()
    count = sum(p.numel() for p in model.parameters())
    return StepResult(count, first, seconds, cpu, peak, model_mib, config.batch)


def measure_fresh(config: StepConfig) -> StepResult:
    """`measure` in a spawned process of its own."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (config,))


def configs(args: argparse.Namespace) -> list[StepConfig]:
    """Every combination asked for; checkpointing applies to the band-split models only."""
    out = []
    for name in args.models:
        batch, frames, rate = recipe_shape(name)
        if args.sample_rate:
            frames, rate = round(frames * args.sample_rate / rate), args.sample_rate
        if args.seconds:
            frames = round(args.seconds * rate)
        base = StepConfig(
            device=args.device,
            model=name,
            batch=args.batch or batch,
            frames=frames,
            sample_rate=rate,
            source=args.source,
            dim=args.dim,
            num_layers=args.num_layers,
            checkpointing=False,
            amp=False,
            steps=args.steps,
        )
        checkpointing = CHOICES[args.checkpointing] if name in SPLIT_MODELS else (False,)
        for amp in CHOICES[args.amp]:
            for ckpt in checkpointing:
                out.append(replace(base, checkpointing=ckpt, amp=amp))
    return out


HEADER = (
    f"{'model':<9} {'batch':>17} {'ckpt':>4} {'amp':>4} {'params':>11} {'first s':>8} "
    f"{'s/step':>8} "
    f"{'cpu s':>8} {'crops/s':>8} {'peak MiB':>9} {'model MiB':>9}"
)


def row(config: StepConfig, result: StepResult) -> str:
    shape = f"{config.batch}x{config.frames}@{config.sample_rate}"
    return (
        f"{config.model:<9} {shape:>17} {'on' if config.checkpointing else 'off':>4} "
        f"{'on' if config.amp else 'off':>4} {result.parameters:>11,} "
        f"{result.first_seconds:>8.3f} {result.seconds:>8.3f} {result.cpu_seconds:>8.3f} "
        f"{result.crops_per_second:>8.3g} {result.peak_mib:>9,.0f} {result.model_mib:>9,.0f}"
    )


def ratios(results: dict[StepConfig, StepResult]) -> list[str]:
    """Checkpointed/plain per model and AMP setting, then SE/plain, from steady steps."""
    lines, se_lines = [], []
    for config, result in results.items():
        if config.checkpointing:
            plain = results.get(replace(config, checkpointing=False))
            if plain:
                lines.append(
                    f"{config.model} amp={'on' if config.amp else 'off'}: checkpointed/plain "
                    f"time x{result.seconds / plain.seconds:.2f}, first step "
                    f"x{result.first_seconds / plain.first_seconds:.2f}, "
                    f"peak memory x{result.peak_mib / plain.peak_mib:.2f}"
                )
        if config.model == "se-bsrnn":
            plain = results.get(replace(config, model="bsrnn"))
            if plain:
                se_lines.append(
                    f"se-bsrnn/bsrnn ckpt={'on' if config.checkpointing else 'off'} "
                    f"amp={'on' if config.amp else 'off'}: time "
                    f"x{result.seconds / plain.seconds:.3f}, "
                    f"peak memory x{result.peak_mib / plain.peak_mib:.3f}"
                )
    return lines + se_lines


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--models", nargs="+", default=list(SPLIT_MODELS), choices=sorted(MODELS))
    parser.add_argument("--checkpointing", choices=sorted(CHOICES), default="both")
    parser.add_argument("--amp", choices=sorted(CHOICES), default="off", help="CUDA only")
    parser.add_argument("--batch", type=int, help="default: each model's recipe")
    parser.add_argument("--seconds", type=float, help="default: each model's recipe")
    parser.add_argument("--sample-rate", type=int, help="default: each model's own")
    parser.add_argument("--source", default="vocals")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=12)
    parser.add_argument("--steps", type=int, default=2, help="steady steps after the first")
    return parser


def main() -> None:
    args = parser().parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here")
    if args.amp != "off" and not args.device.startswith("cuda"):
        raise SystemExit("--amp: mixed precision is measured on CUDA only (float16 autocast)")
    todo = configs(args)
    print(
        f"device={args.device}, torch threads={torch.get_num_threads()}, steady steps="
        f"{args.steps}, band-split size dim={args.dim} x {args.num_layers} blocks, "
        f"source={args.source}; batch is BATCHxFRAMES@RATE of stereo"
    )
    print(HEADER)
    results = {}
    for config in todo:
        results[config] = measure_fresh(config)
        print(row(config, results[config]), flush=True)
    for line in ratios(results):
        print(line)


if __name__ == "__main__":
    main()
