"""The render's settings: what the command line fixes for every item of a dataset."""

from __future__ import annotations

import math
from dataclasses import dataclass

from augment.errors import ConfigError
from augment.stretch import check_backend
from manifests.files import SUBTYPES

FORMATS = ("wav", "flac")
SPLITS = ("train", "valid", "all")


@dataclass(frozen=True)
class RenderSettings:
    """Everything on the command line that decides the bytes of item i, plus the source root
    (which does not: the sources' content does, see `augment.identity`)."""

    root: str
    source_form: str = "auto"
    subset: str = "train"
    split: str = "train"
    mode: str = "incoherent"
    seconds: float = 10.0
    sample_rate: int = 44100
    seed: int = 0
    config_path: str | None = None
    format: str = "wav"
    subtype: str = "PCM_16"
    stretch_backend: str = "pedalboard"
    quality: str = "best"
    valid_tracks: tuple[str, ...] = ()
    """Songs written unaugmented as the dataset's validation split, never drawn from
    (`augment.validation`); resolved from the CLI before the identity is made."""

    @property
    def frames(self) -> int:
        return round(self.seconds * self.sample_rate)


def check_settings(settings: RenderSettings) -> None:
    if not math.isfinite(settings.seconds) or settings.seconds <= 0:
        raise ConfigError(f"--seconds must be a positive number of seconds, got {settings.seconds}")
    if not 8000 <= settings.sample_rate <= 384000:
        raise ConfigError(f"--sr must be between 8000 and 384000 Hz, got {settings.sample_rate}")
    if settings.frames < 1:
        raise ConfigError(f"--seconds {settings.seconds} is shorter than one sample at --sr")
    if settings.format not in FORMATS:
        raise ConfigError(f"--format must be wav or flac, got {settings.format!r}")
    if settings.subtype not in SUBTYPES or (
        settings.format == "flac" and settings.subtype == "FLOAT"
    ):
        raise ConfigError(
            f"--subtype must be one of {SUBTYPES} (flac takes PCM only), got {settings.subtype!r}"
        )
    if settings.split not in SPLITS:
        raise ConfigError(f"--split must be train, valid or all, got {settings.split!r}")
    check_backend(settings.stretch_backend, settings.quality)
