"""Checkpoints: everything to rebuild a model alone, or to continue its run exactly.

`RUN/last.pt` is written after every epoch and holds the training state (optimizer, scheduler,
grad scaler, torch RNG states, history); `RUN/best.pt` holds the model of the best validation
epoch. Both carry the model's registry name and constructor kwargs (so evaluation needs no
config), the command line, the config, the dataset's manifest checksum and the git commit.
Files are written to a temporary name and renamed, so a crash never leaves a truncated one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch

from manifests import STEM_NAMES
from manifests.files import atomic_path, is_temp
from train.errors import TrainError
from train.models import MODELS, build_model
from train.models.base import SeparationModel
from train.models.stack import StackedModel

LAST = "last.pt"
BEST = "best.pt"


def git_commit() -> str | None:
    """The commit of the code that trains, with '-dirty' if the tree has changes."""
    root = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def model_entry(model: SeparationModel) -> dict[str, Any]:
    return {"name": model.name, "kwargs": model.init_kwargs, "state": model.state_dict()}


def rng_states() -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as temp:
        torch.save(payload, temp)


def remove_stale_temps(run: Path) -> None:
    """Temp files of a checkpoint save that a crash interrupted (`.last.pt.tmp-PID`); the
    finished checkpoints beside them are intact, since saves only ever rename into place."""
    for path in run.iterdir():
        if is_temp(path):
            path.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TrainError(f"{path} does not exist; pass the --out folder of an mstrain run")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged or foreign file
        raise TrainError(f"{path} is not an mstrain checkpoint ({exc})") from exc


def check_model_name(payload: dict[str, Any], requested: str, path: Path) -> None:
    found = payload["model"]["name"]
    if found != requested:
        raise TrainError(
            f"{path} holds a {found!r} model, not the requested {requested!r}; "
            f"pass --model {found} or another --out folder"
        )


def rebuild(entry: dict[str, Any]) -> SeparationModel:
    """The model a checkpoint's `model` entry describes, with its weights."""
    if entry["name"] not in MODELS:
        raise TrainError(
            f"checkpoint model {entry['name']!r} is not registered; known: {sorted(MODELS)}"
        )
    model = build_model(entry["name"], **entry["kwargs"])
    model.load_state_dict(entry["state"])
    return model


def load_run_model(run: Path) -> tuple[SeparationModel, dict[str, Any]]:
    """The best model of a run folder (or its last one if no epoch was validated yet).

    A `--target all` run of a one-source model holds one run per source (RUN/vocals, ...);
    those load as one `StackedModel`, with the payloads by source.
    """
    if not run.is_dir():
        raise TrainError(f"run folder {run} does not exist; pass the --out folder of mstrain")
    per_source = [run / s for s in STEM_NAMES if (run / s / LAST).is_file()]
    if not (run / LAST).is_file() and per_source:
        loaded = [load_run_model(part) for part in per_source]
        stacked = StackedModel([model for model, _ in loaded])
        return stacked, {
            part.name: payload for part, (_, payload) in zip(per_source, loaded, strict=True)
        }
    path = run / BEST if (run / BEST).is_file() else run / LAST
    payload = load(path)
    return rebuild(payload["model"]), payload
