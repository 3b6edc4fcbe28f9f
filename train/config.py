"""Training settings, one dataclass per concern.

Field names are the keyword arguments of what they configure (the data loaders, Adam and
StepLR, the loop), so a flag is one hop from its use. `train/cli.py` maps click options onto
these classes in one place and takes its defaults from here; a checkpoint stores them as a dict.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from train.errors import TrainError

TARGETS = ("all", "vocals", "drums", "bass", "other")
RESAMPLE_ON = ("auto", "loader", "device")  # `train.batch_resample`


@dataclass
class DataConfig:
    """What the loaders read: a rendered dataset for training, real tracks for validation."""

    root: Path | str
    """A dataset folder or song root, or packed shards' folder or URL (kept as text: a
    Path would fold the `//` of a URL)."""
    where: str | None = None
    target: str = "all"
    segment: float | None = None  # None: the model's recipe (`SeparationModel.recipe`)
    mono: bool = False
    workers: int = 2
    resample_on: str = "auto"
    """Where training crops go from the dataset's rate to the model's: in the loader
    workers or on the training device (`train.batch_resample`); auto: device on CUDA."""
    valid_root: Path | None = None
    valid_subset: str = "valid"
    valid_fraction: float = 0.1
    activity_db: float | None = None
    gain: tuple[float, float] | None = None
    channel_swap: bool = False
    polarity_flip: bool = False
    remix: bool = False
    """Online augmentation (`train.online`); all off by default until the ablation in
    docs/training.md says which to turn on."""


@dataclass
class ModelConfig:
    """A registry name and constructor arguments beyond `sources` (set from --target)."""

    name: str = "unet"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Adam, StepLR and gradient clipping."""

    lr: float = 1e-3
    weight_decay: float | None = None  # None: the model's recipe
    lr_step: int = 2
    lr_gamma: float = 0.98
    clip: float = 5.0


@dataclass
class LoopConfig:
    """How long to train, where to write, and how to stop."""

    out: Path
    epochs: int = 100
    batches_per_epoch: int | None = None
    batch_size: int | None = None  # None: the model's own (`SeparationModel.batch_size`)
    patience: int = 10
    device: str = "auto"
    seed: int = 0
    max_minutes: float | None = None
    resume: bool = False
    valid_sdr: bool = False
    """Also score each validation track's uSDR every epoch (`train.epochs.validate`)."""


@dataclass
class TrainConfig:
    data: DataConfig
    model: ModelConfig
    optim: OptimConfig
    loop: LoopConfig

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so checkpoints load with `torch.load(weights_only=True)`."""
        return {
            part.name: {
                key: str(value) if isinstance(value, Path) else value
                for key, value in dataclasses.asdict(getattr(self, part.name)).items()
            }
            for part in dataclasses.fields(self)
        }


def default(cls: type, name: str) -> Any:
    """The default of field `name` of dataclass `cls` (click options show it as theirs)."""
    for item in dataclasses.fields(cls):
        if item.name == name:
            return item.default
    raise KeyError(f"{cls.__name__} has no field {name!r}")


_POSITIVE = {
    ("data", "segment"): "--segment (seconds)",
    ("optim", "lr_gamma"): "--lr-gamma",
    ("optim", "clip"): "--clip",
    ("loop", "max_minutes"): "--max-minutes",
}
_AT_LEAST = {
    ("data", "workers"): ("--workers", 0),
    ("optim", "lr_step"): ("--lr-step", 1),
    ("loop", "epochs"): ("--epochs", 1),
    ("loop", "batches_per_epoch"): ("--batches-per-epoch", 1),
    ("loop", "batch_size"): ("--batch-size", 1),
    ("loop", "patience"): ("--patience", 0),
}


def check_config(config: TrainConfig) -> None:
    """Every number where it is parsed: a bad one is one line naming the flag, not a traceback
    from deep inside the DataLoader or the optimiser."""
    for (part, name), flag in _POSITIVE.items():
        value = getattr(getattr(config, part), name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise TrainError(f"{flag} must be a positive number, got {value}")
    for (part, name), (flag, low) in _AT_LEAST.items():
        value = getattr(getattr(config, part), name)
        if value is not None and value < low:
            raise TrainError(f"{flag} must be at least {low}, got {value}")
    for flag, value in (("--lr", config.optim.lr), ("--weight-decay", config.optim.weight_decay)):
        # lr 0 is a fair probe (only BatchNorm moves); None is the model's recipe
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise TrainError(f"{flag} must be a number >= 0, got {value}")
    gain = config.data.gain
    if gain and not (0 <= gain[0] <= gain[1] and all(map(math.isfinite, gain))):
        raise TrainError(f"--online-gain takes LOW HIGH with 0 <= LOW <= HIGH, got {gain}")
    if config.data.resample_on not in RESAMPLE_ON:
        raise TrainError(
            f"--resample-on must be one of {', '.join(RESAMPLE_ON)}, "
            f"got {config.data.resample_on!r}"
        )
    if config.optim.lr_gamma > 1:
        raise TrainError(f"--lr-gamma must be at most 1, got {config.optim.lr_gamma}")


def with_recipe(config: TrainConfig, recipe: dict[tuple[str, str], Any]) -> TrainConfig:
    """`config` with every field the user left unset (None) taken from the model's recipe.
    Fields the recipe does not name keep None (`batches_per_epoch`: one pass over the items;
    `activity_db`: off). Pass `--activity-db -inf` to turn a recipe's detection off."""
    parts = {}
    for part in ("data", "optim", "loop"):
        section = getattr(config, part)
        unset = {
            name: value
            for (where, name), value in recipe.items()
            if where == part and getattr(section, name) is None
        }
        parts[part] = dataclasses.replace(section, **unset)
    return dataclasses.replace(config, **parts)
