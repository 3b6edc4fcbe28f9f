"""Typed rows of the two manifest tables.

One `ItemRecord` per rendered item (its mixture) and one `StemRecord` per (item, stem). Effects
that the render stage knows how to describe get typed columns (`pitch_semitones`, ...), so an
ablation is a pandas query; the complete ordered chain, including effects without typed columns,
is kept as JSON in `StemRecord.chain` so that any row can be re-rendered.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

# Typed effect columns, by column prefix: the chain entry `kind` they describe and its parameters
# (column -> parameter). `<prefix>_applied` says whether the effect is in the chain; parameter
# columns of an effect that was not applied hold null (NaN in pandas).
EFFECT_COLUMNS: dict[str, tuple[str, dict[str, str]]] = {
    "pitch": ("pitch_shift", {"pitch_semitones": "semitones"}),
    "stretch": ("time_stretch", {"stretch_factor": "factor"}),
    "comp": ("compressor", {"comp_threshold_db": "threshold_db", "comp_ratio": "ratio"}),
    "reverb": ("reverb", {"reverb_room_size": "room_size", "reverb_damping": "damping"}),
}


class _Record:
    """to_dict/from_dict shared by both records; unknown keys are refused, not dropped."""

    table: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, row: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(row) - names
        if unknown:
            raise ValueError(f"{cls.table} row has unknown columns {sorted(unknown)}")
        clean = {k: (None if _is_missing(v) else _plain(v)) for k, v in row.items()}
        return cls(**clean)

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """numpy scalars from pandas rows -> Python scalars, so records compare and serialise."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


@dataclass(frozen=True)
class ItemRecord(_Record):
    """One rendered mixture and how it was drawn."""

    table: ClassVar[str] = "items"

    item_id: str
    split: str
    mode: str
    seconds: float
    sample_rate: int
    channels: int
    num_frames: int
    run_seed: int
    item_index: int
    item_seed: int
    mixture_path: str
    checksum: str
    bytes: int
    common_scale: float
    mixture_rms_db: float
    mixture_peak: float
    attempts: int
    origin: str = ""


@dataclass(frozen=True)
class StemRecord(_Record):
    """One stem of one item: where its audio came from and what was done to it."""

    table: ClassVar[str] = "stems"

    item_id: str
    stem: str
    source_track: str
    source_subset: str
    offset_seconds: float
    duration_seconds: float
    gain_db: float
    chain: str
    path: str
    checksum: str
    bytes: int
    rms_db: float
    peak: float
    activity: float
    pitch_applied: bool = False
    pitch_semitones: float | None = None
    stretch_applied: bool = False
    stretch_factor: float | None = None
    comp_applied: bool = False
    comp_threshold_db: float | None = None
    comp_ratio: float | None = None
    reverb_applied: bool = False
    reverb_room_size: float | None = None
    reverb_damping: float | None = None


def effect_columns(chain: list[dict[str, Any]]) -> dict[str, Any]:
    """The typed columns for an ordered chain of effect dicts (each with a `kind` key).

    A chain may hold an effect kind twice (a user config can add it); the typed columns then
    describe the first occurrence and the JSON chain keeps all of them.
    """
    columns: dict[str, Any] = {}
    for prefix, (kind, params) in EFFECT_COLUMNS.items():
        entry = next((e for e in chain if e.get("kind") == kind), None)
        columns[f"{prefix}_applied"] = entry is not None
        for column, param in params.items():
            columns[column] = None if entry is None else float(entry[param])
    return columns
