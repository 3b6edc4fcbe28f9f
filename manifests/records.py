"""Typed rows of the two manifest tables.

One `ItemRecord` per item (a rendered mixture, or a real validation song) and one `StemRecord`
per (item, stem). A stem's ordered effect chain is a native column (`effects`: a list of
`{kind, params}` structs), enough to re-render the stem. The typed columns that make ablations
a pandas query (`<kind>_applied`, `<kind>_<param>`) are derived from it when the table is
written, for the effect kinds the dataset declares; this package names none of them.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from manifests.errors import ManifestError

ROLES = ("train", "valid")
"""`train`: a rendered item; `valid`: a real song kept for validation (mixture == sum of its
stems holds for rendered rows only)."""


class _Record:
    """to_dict/from_dict shared by both records; unknown keys are refused, not dropped."""

    table: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], derived: Collection[str] = ()):
        """A record from a table row; `derived` names columns computed from the record
        (the typed effect columns), which are left out."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(row) - names - set(derived)
        if unknown:
            raise ValueError(f"{cls.table} row has unknown columns {sorted(unknown)}")
        clean = {k: (None if _is_missing(v) else _plain(v)) for k, v in row.items() if k in names}
        return cls(**clean)

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """numpy scalars and arrays from pandas rows -> Python values, so records compare and
    serialise; the `effects` column comes back from Arrow as maps of (key, value) pairs."""
    if isinstance(value, (str, bytes)):
        return value
    if hasattr(value, "tolist") and not hasattr(value, "item"):
        value = value.tolist()
    if isinstance(value, list):
        return normalise_effects(value)
    return value.item() if hasattr(value, "item") else value


def normalise_effects(effects: Sequence[Any]) -> list[dict[str, Any]]:
    """`[{kind, params}]` with params as a plain dict of floats, however Arrow returned them."""
    chain = []
    for entry in effects:
        params = entry["params"]
        pairs = params.items() if isinstance(params, Mapping) else params
        chain.append({"kind": str(entry["kind"]), "params": {str(k): float(v) for k, v in pairs}})
    return chain


@dataclass(frozen=True)
class ItemRecord(_Record):
    """One item: a rendered mixture and how it was drawn, or a real validation song."""

    table: ClassVar[str] = "items"

    item_id: str
    subset: str
    role: str
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
    effects: list[dict[str, Any]]
    path: str
    checksum: str
    bytes: int
    rms_db: float
    peak: float
    activity: float


def applied_column(kind: str) -> str:
    return f"{kind}_applied"


def param_column(kind: str, param: str) -> str:
    return f"{kind}_{param}"


def effect_columns(
    effects: Sequence[Mapping[str, Any]], declared: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """The typed columns of one chain, for the effect kinds `declared` (kind -> parameters).

    A chain may hold an effect kind twice (a user config can add it); the typed columns then
    describe the first occurrence and `effects` keeps all of them. A kind the declaration does
    not name is refused: every effect that occurs must be selectable with `--where`.
    """
    undeclared = {e["kind"] for e in effects} - set(declared)
    if undeclared:
        raise ManifestError(
            f"effects {sorted(undeclared)} are not in the dataset's effect_columns "
            f"({sorted(declared)}); declare every effect kind the render can apply"
        )
    columns: dict[str, Any] = {}
    for kind, params in declared.items():
        entry = next((e for e in effects if e["kind"] == kind), None)
        columns[applied_column(kind)] = entry is not None
        for param in params:
            value = None if entry is None else entry["params"].get(param)
            columns[param_column(kind, param)] = None if value is None else float(value)
    return columns
