"""Reading schema-1 datasets: their layout, and the upgrade of their rows to schema 2.

Schema 1 kept both tables in one folder (`manifest/items.parquet`, `manifest/stems.parquet`),
the chain as a JSON string, four hard-wired typed effect columns (`pitch_semitones`, ...), a
time-stretch `factor` that was a playback rate (> 1 shorter) and the folder name in `split`.
This module is the frozen description of that format: it is the only place in `manifests` that
names effects, because the old format named them. `Dataset.open` upgrades in memory; `msaug
migrate` (`manifests.migrate`) rewrites a folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from manifests.paths import confined
from manifests.schema import STEM_NAMES
from manifests.tables import read_parquet, with_effect_columns

VERSION = 1
ITEMS_FILE = "manifest/items.parquet"
STEMS_FILE = "manifest/stems.parquet"

_TYPED = {
    "pitch_shift": ("pitch", {"semitones": "pitch_semitones"}),
    "time_stretch": ("stretch", {"factor": "stretch_factor"}),
    "compressor": ("comp", {"threshold_db": "comp_threshold_db", "ratio": "comp_ratio"}),
    "reverb": ("reverb", {"room_size": "reverb_room_size", "damping": "reverb_damping"}),
}
"""Schema 1's typed columns: chain kind -> (column prefix, parameter -> column)."""
_TYPED_COLUMNS = [
    column
    for prefix, params in _TYPED.values()
    for column in (f"{prefix}_applied", *params.values())
]
_ITEM_COLUMNS = [
    "item_id", "split", "mode", "seconds", "sample_rate", "channels", "num_frames", "run_seed",
    "item_index", "item_seed", "mixture_path", "checksum", "bytes", "common_scale",
    "mixture_rms_db", "mixture_peak", "attempts", "origin",
]  # fmt: skip
_STEM_COLUMNS = [
    "item_id", "stem", "source_track", "source_subset", "offset_seconds", "duration_seconds",
    "gain_db", "chain", "path", "checksum", "bytes", "rms_db", "peak", "activity",
    *_TYPED_COLUMNS,
]  # fmt: skip
_PROVENANCE = ("command", "created", "msaug_version", "failed_items", "last_run", "rubberband")
_PROVENANCE += ("versions",)


def read_v1(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables as schema 1 stored them, column for column."""
    return read_parquet(confined(root, ITEMS_FILE), _ITEM_COLUMNS), read_parquet(
        confined(root, STEMS_FILE), _STEM_COLUMNS
    )


def _upgrade_effect(entry: dict[str, Any]) -> dict[str, Any]:
    params = {k: float(v) for k, v in entry.items() if k != "kind"}
    if entry["kind"] == "time_stretch" and "factor" in params:
        params = {"duration_factor": 1.0 / params.pop("factor"), **params}  # a rate, inverted
    return {"kind": entry["kind"], "params": params}


def _declared(chains: list[list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Typed columns for a migrated dataset: schema 1's four effects (their typed parameters,
    stretch as a duration factor), then every other kind and parameter found in its chains."""
    declared: dict[str, list[str]] = {
        kind: ["duration_factor" if p == "factor" else p for p in params]
        for kind, (_, params) in _TYPED.items()
    }
    for chain in chains:
        for entry in chain:
            params = declared.setdefault(entry["kind"], [])
            params += [p for p in entry["params"] if p not in params]
    return declared


def upgrade(
    header: dict[str, Any], items: pd.DataFrame, stems: pd.DataFrame
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Schema-1 header and rows as schema 2 holds them. The identity is kept as it was (its
    fields were all byte-determining, the source root included); `msaug rerender` reads both
    forms. Provenance moves under `provenance`; there is no digest until `msaug migrate`."""
    new_header = {k: v for k, v in header.items() if k not in _PROVENANCE}
    new_header["provenance"] = {k: header[k] for k in _PROVENANCE if k in header}
    chains = [[_upgrade_effect(e) for e in json.loads(text)] for text in stems["chain"]]
    declared = _declared(chains)
    new_header.update(stems=list(STEM_NAMES), effect_columns=declared, digest=None, tables=None)
    new_items = items.rename(columns={"split": "subset"})
    new_items.insert(2, "role", "train")
    new_stems = stems.drop(columns=["chain", *_TYPED_COLUMNS])
    new_stems.insert(7, "effects", chains)
    return new_header, new_items, with_effect_columns(new_stems, declared)
