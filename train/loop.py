"""The training loop: `fit` builds the objects, then alternates training and validation.

One epoch is `--batches-per-epoch` batches of random crops, then the validation loss over
whole real tracks cut into `--segment` pieces. After every epoch the run is checkpointed, so
`--resume` continues from the last finished epoch as if the run had not stopped.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from manifests import STEM_NAMES
from train import checkpoint, distributed
from train.audio import keep_freed_memory
from train.batch_resample import BatchResampler
from train.config import ModelConfig, TrainConfig, with_recipe
from train.data import crop_rate, make_loaders, set_epoch, training_counts
from train.epochs import train_one_epoch, validate
from train.errors import TrainError
from train.logs import RunLog
from train.models import MODELS
from train.models.base import SeparationModel
from train.songs import open_training_data


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda was requested but torch sees no CUDA device")
    return torch.device(name)


class TrainingLoss(nn.Module):
    """The model's training loss as a module's forward, so DistributedDataParallel, which
    synchronises gradients of what runs through its forward, can wrap it."""

    def __init__(self, model: SeparationModel):
        super().__init__()
        self.model = model

    def forward(self, mix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.model.training_loss(mix, targets)


def new_model(config: ModelConfig, target: str, mono: bool, data_rate: int) -> SeparationModel:
    """A fresh model; a model whose class sets no default rate runs at the dataset's rate."""
    if config.name not in MODELS:
        raise TrainError(f"unknown model {config.name!r}; choose one of {sorted(MODELS)}")
    cls = MODELS[config.name]
    kwargs: dict[str, Any] = {"sources": list(STEM_NAMES) if target == "all" else [target]}
    if mono:
        kwargs["channels"] = 1
    if inspect.signature(cls).parameters["sample_rate"].default is inspect.Parameter.empty:
        kwargs["sample_rate"] = data_rate
    try:
        return cls(**{**kwargs, **config.args})
    except (TypeError, ValueError) as exc:
        raise TrainError(f"cannot build model {config.name!r}: {exc}") from exc


def per_target_configs(config: TrainConfig) -> list[TrainConfig]:
    """The runs one command asks for: `--target all` of a one-source model (BSRNN) is one run
    per source, in OUT/<source>; anything else is the run itself."""
    cls = MODELS.get(config.model.name)
    if config.data.target != "all" or cls is None or not cls.single_target:
        return [config]
    return [
        dataclasses.replace(
            config,
            data=dataclasses.replace(config.data, target=source),
            loop=dataclasses.replace(config.loop, out=Path(config.loop.out) / source),
        )
        for source in STEM_NAMES
    ]


def resume_payload(config: TrainConfig, manifest_checksum: str) -> dict[str, Any] | None:
    """The checkpoint to continue, after checking it belongs to this model and dataset."""
    path = config.loop.out / checkpoint.LAST
    if not config.loop.resume:
        if path.exists():
            raise TrainError(
                f"{config.loop.out} already holds a run; pass --resume to continue it "
                "or choose another --out"
            )
        return None
    if not path.exists():
        raise TrainError(f"{config.loop.out} holds no {checkpoint.LAST} to resume; drop --resume")
    payload = checkpoint.load(path)
    checkpoint.check_model_name(payload, config.model.name, path)
    if payload["manifest_checksum"] != manifest_checksum:
        raise TrainError(
            f"{path} was trained on another dataset than {config.data.root} "
            "(manifest checksums differ); resume with the original --data"
        )
    return payload


def fit(config: TrainConfig, command: str) -> list[dict[str, Any]]:
    """Train until --epochs, early stopping or --max-minutes; return the per-epoch history.

    Under torchrun every process runs this; they train in step, and rank 0 alone writes.
    """
    started = time.monotonic()
    if config.model.name in MODELS:  # flags left unset take the model's recipe
        config = with_recipe(config, MODELS[config.model.name].recipe)
    loop, out = config.loop, Path(config.loop.out)
    process, device = distributed.start(resolve_device(loop.device))
    dataset = open_training_data(str(config.data.root))
    meta = {
        "command": command,
        "config": config.to_dict(),
        "manifest_checksum": dataset.manifest_checksum(),
        "git_commit": checkpoint.git_commit(),
        "world_size": process.world,
    }
    resumed = resume_payload(config, meta["manifest_checksum"])
    torch.manual_seed(loop.seed)  # weight init and dropout use torch's default generator
    model = (
        checkpoint.rebuild(resumed["model"])
        if resumed
        else new_model(config.model, config.data.target, config.data.mono, dataset.sample_rate)
    ).to(device)
    say = tqdm.write if process.is_main else lambda _: None
    say(
        f"{model.name} for {', '.join(model.sources)} at {model.sample_rate} Hz: "
        f"{model.parameter_count():,} parameters"
        + (f", {process.world} process{'es' * (process.world > 1)}" if process.distributed else "")
    )
    keep_freed_memory()
    train_loader, valid_loader = make_loaders(
        dataset,
        config.data,
        loop,
        model.sources,
        model.sample_rate,
        device.type == "cuda",
        process.rank,
        process.world,
    )
    valid_set = getattr(valid_loader.dataset, "dataset", valid_loader.dataset)  # DDP: Subset
    items, crops = training_counts(train_loader)
    say(
        f"run folder {out}; training on {items} items ({crops} crops per epoch), "
        f"validating on {valid_set.describe()}"
    )
    step: nn.Module = TrainingLoss(model)
    if process.distributed:
        if device.type == "cuda":  # BatchNorm statistics over the global batch (nccl only)
            nn.SyncBatchNorm.convert_sync_batchnorm(model)
        step = DistributedDataParallel(step, device_ids=[device] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.optim.lr_step, gamma=config.optim.lr_gamma
    )
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    progress: dict[str, Any] = {"epoch": 0, "best_score": math.inf, "best_epoch": 0, "history": []}
    if resumed:
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        scaler.load_state_dict(resumed["scaler"])
        checkpoint.restore_rng(resumed["rng"])
        progress = {key: resumed[key] for key in progress}
    if process.is_main:
        out.mkdir(parents=True, exist_ok=True)
        checkpoint.remove_stale_temps(out)
        log = RunLog(out)
        if resumed:
            log.write_csv(progress["history"])
    frames = round(config.data.segment * model.sample_rate)
    resample = BatchResampler(crop_rate(train_loader), model.sample_rate, frames, device)
    deadline = started + 60 * loop.max_minutes if loop.max_minutes else math.inf
    while progress["epoch"] < loop.epochs:
        if progress["epoch"] - progress["best_epoch"] >= loop.patience:
            say(f"early stop: no validation improvement for {loop.patience} epochs")
            break
        late = float(time.monotonic() >= deadline)
        if distributed.sum_over_processes([late], process, device)[0]:  # all stop together
            say(f"stopping: --max-minutes {loop.max_minutes} reached")
            break
        epoch_start = time.monotonic()
        epoch = progress["epoch"] = progress["epoch"] + 1
        set_epoch(train_loader, epoch)
        sums = train_one_epoch(
            step,
            train_loader,
            optimizer,
            scaler,
            device,
            config.optim.clip,
            resample,
            process.is_main,
        )
        checked = validate(model, valid_loader, frames, loop.batch_size, device, loop.valid_sdr)
        train_total, crops, silent_skipped, valid_total, pieces, usdr, scores = (
            distributed.sum_over_processes([*sums, *checked.as_list()], process, device)
        )
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        row = {
            "epoch": epoch,
            "train_loss": train_total / crops,
            "valid_loss": valid_total / pieces,
            **({"valid_usdr": usdr / scores} if scores else {}),
            "lr": lr,
            "silent_skipped": int(silent_skipped),
            "seconds": time.monotonic() - epoch_start,
        }
        progress["history"].append(row)
        skipped = f", {row['silent_skipped']} silent crops redrawn" if silent_skipped else ""
        measured = f" (uSDR {row['valid_usdr']:.2f} dB)" if scores else ""
        say(
            f"epoch {epoch}: train {row['train_loss']:.6g} valid {row['valid_loss']:.6g}"
            f"{measured} ({row['seconds']:.1f} s{skipped})"
        )
        improved = row["valid_loss"] < progress["best_score"]
        if improved:
            progress.update(best_score=row["valid_loss"], best_epoch=epoch)
        if process.is_main:
            save_epoch(out, model, optimizer, scheduler, scaler, progress, meta, improved)
            log.epoch(progress["history"])
    if process.is_main:
        log.close(progress["history"])
        if progress["best_epoch"]:
            say(
                f"best epoch {progress['best_epoch']} of {progress['epoch']}: valid "
                f"{progress['best_score']:.6g} -> {out / checkpoint.BEST}"
            )
    distributed.stop(process)
    return progress["history"]


def save_epoch(
    out: Path,
    model: SeparationModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    progress: dict[str, Any],
    meta: dict[str, Any],
    improved: bool,
) -> None:
    """RUN/last.pt with everything `--resume` needs; RUN/best.pt when validation improved."""
    entry = checkpoint.model_entry(model)
    if improved:
        checkpoint.save(out / checkpoint.BEST, {"model": entry, **progress, **meta})
    checkpoint.save(
        out / checkpoint.LAST,
        {
            "model": entry,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": checkpoint.rng_states(),
            **progress,
            **meta,
        },
    )
