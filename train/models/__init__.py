"""Model registry: `mstrain --model NAME` picks a class here; checkpoints store the name."""

from __future__ import annotations

from typing import Any

from train.models.base import SeparationModel

MODELS: dict[str, type[SeparationModel]] = {}


def register(cls: type[SeparationModel]) -> type[SeparationModel]:
    MODELS[cls.name] = cls
    return cls


def build_model(name: str, **kwargs: Any) -> SeparationModel:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](**kwargs)


from train.models import bsrnn, unet  # noqa: E402, F401
