"""What a render actually holds, next to what its config asked for (`msaug stats`).

A config says "pitch shift with p = 0.6"; only the tables say whether 60% of the vocals were
shifted, over which range, at which levels, and whether a few source tracks dominate. These
numbers come from the tables alone, so they describe selections and merges as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from manifests.dataset import Dataset
from manifests.records import param_column
from manifests.schema import MIXTURE

LEVEL_MEASURES = ("rms_db", "peak")


def parameter_columns(dataset: Dataset) -> list[str]:
    """The typed parameter columns the dataset declares that hold a value somewhere."""
    stems = dataset.stems
    columns = [
        param_column(kind, param)
        for kind, params in dataset.header["effect_columns"].items()
        for param in params
    ]
    return [c for c in columns if c in stems.columns and stems[c].notna().any()]


@dataclass(frozen=True)
class DatasetStats:
    n_items: int
    modes: dict[str, int]
    effects: pd.DataFrame
    """stem, effect (chain kind), applied, items, rate, rate_<mode> per mode, configured_p and
    shared_p (None where the render config does not say)."""
    parameters: pd.DataFrame
    """stem, column, n, min, median, max over the stems where the effect was applied."""
    levels: pd.DataFrame
    """source (a stem or mixture), measure (rms_db, peak), n, min, median, max."""
    coverage: pd.DataFrame
    """stem, source_track, items: how many items draw each stem from each track."""

    def to_dict(self) -> dict[str, Any]:
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(frame.to_json(orient="records"))

        return {
            "n_items": self.n_items,
            "modes": self.modes,
            "effects": records(self.effects),
            "parameters": records(self.parameters),
            "levels": records(self.levels),
            "coverage": records(self.coverage),
        }

    def to_text(self) -> str:
        modes = ", ".join(f"{mode} {n}" for mode, n in self.modes.items())
        effects = self.effects.assign(
            applied=[
                f"{a}/{n}" for a, n in zip(self.effects.applied, self.effects["items"], strict=True)
            ],
            configured_p=self.effects.configured_p.map(_p_text),
            shared_p=self.effects.shared_p.map(_p_text),
        ).drop(columns="items")
        parameters = self.parameters[self.parameters.n > 0]
        sections = [
            f"{self.n_items} items: {modes}",
            "Effects: applied rate per stem, overall and per mode, next to the render config's p "
            "for the stem (configured_p) and for effects drawn once per item (shared_p; '-' "
            "where the config does not say)\n" + _table(effects),
            "Effect parameters over the stems where the effect was applied\n"
            + (_table(parameters) if len(parameters) else "(no typed effect was applied)"),
            "Levels\n" + _table(self.levels),
            "Source-track coverage: items per source track\n" + _table(self._coverage_summary()),
        ]
        return "\n\n".join(sections)

    def _coverage_summary(self) -> pd.DataFrame:
        rows = []
        for stem, part in self.coverage.groupby("stem", sort=False):
            counts = part.set_index("source_track")["items"]
            rows.append(
                {
                    "stem": stem,
                    "tracks": len(counts),
                    "min": int(counts.min()),
                    "median": float(counts.median()),
                    "max": int(counts.max()),
                    "least used": f"{counts.idxmin()} ({counts.min()})",
                    "most used": f"{counts.idxmax()} ({counts.max()})",
                }
            )
        return pd.DataFrame(rows)


def _p_text(p: Any) -> str:
    return "-" if pd.isna(p) else f"{p:.3f}"


def _table(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def _config(identity: Any) -> dict[str, Any]:
    """The effects config inside a render's identity: `identity.config`, or identity itself."""
    if not isinstance(identity, dict):
        return {}
    config = identity.get("config")
    return config if isinstance(config, dict) and "effects" in config else identity


def _probabilities(specs: Any) -> dict[str, float]:
    """`{<effect>: {"p": ...}}` -> p by chain kind. Anything else reads as "not said"."""
    if not isinstance(specs, dict):
        return {}
    found = {}
    for name, spec in specs.items():
        p = spec.get("p") if isinstance(spec, dict) else None
        if isinstance(p, (int, float)) and not isinstance(p, bool):
            found[name] = float(p)
    return found


def configured_probabilities(identity: Any, stem: str) -> dict[str, float]:
    """`<config>.effects.<stem>.<effect>.p` by chain kind, read defensively: the render config's
    shape belongs to the render stage."""
    effects = _config(identity).get("effects")
    return _probabilities(effects.get(stem) if isinstance(effects, dict) else None)


def shared_probabilities(identity: Any) -> dict[str, float]:
    """`<config>.shared.<effect>.p`: effects drawn once per item for all stems (coherent mode)."""
    return _probabilities(_config(identity).get("shared"))


def _effects(dataset: Dataset) -> pd.DataFrame:
    """Applied rates per stem and effect, overall and per mode (modes may use other specs)."""
    stems = dataset.stems.merge(dataset.items[["item_id", "mode"]], on="item_id")
    stems["kinds"] = stems["effects"].map(lambda chain: {entry["kind"] for entry in chain})
    identity = dataset.header.get("identity")
    shared = shared_probabilities(identity)
    modes = sorted(stems["mode"].unique())
    rows = []
    declared = list(dataset.header["effect_columns"])
    applied_anywhere = set().union(*stems["kinds"])
    for stem in dataset.stem_names:
        rows_of_stem = stems[stems["stem"] == stem]
        configured = configured_probabilities(identity, stem)
        wanted = applied_anywhere | set(configured) | set(shared)
        names = [k for k in declared if k in wanted] + sorted(wanted - set(declared))
        for kind in names:
            applied = rows_of_stem["kinds"].map(lambda k, kind=kind: kind in k)
            by_mode = applied.groupby(rows_of_stem["mode"]).mean()
            rows.append(
                {
                    "stem": stem,
                    "effect": kind,
                    "applied": int(applied.sum()),
                    "items": len(applied),
                    "rate": float(applied.mean()) if len(applied) else float("nan"),
                    **{f"rate_{mode}": float(by_mode.get(mode, float("nan"))) for mode in modes},
                    "configured_p": configured.get(kind),
                    "shared_p": shared.get(kind),
                }
            )
    columns = ["stem", "effect", "applied", "items", "rate", *(f"rate_{m}" for m in modes)]
    return pd.DataFrame(rows, columns=[*columns, "configured_p", "shared_p"])


def _summary(values: pd.Series) -> dict[str, Any]:
    values = values.dropna()
    if values.empty:
        return {"n": 0, "min": float("nan"), "median": float("nan"), "max": float("nan")}
    return {
        "n": len(values),
        "min": float(values.min()),
        "median": float(values.median()),
        "max": float(values.max()),
    }


def compute_stats(dataset: Dataset) -> DatasetStats:
    items, stems = dataset.items, dataset.stems
    by_stem = {stem: stems[stems["stem"] == stem] for stem in dataset.stem_names}
    parameters = [
        {"stem": stem, "column": column, **_summary(rows[column])}
        for stem, rows in by_stem.items()
        for column in parameter_columns(dataset)
    ]
    levels = [
        {"source": stem, "measure": measure, **_summary(rows[measure])}
        for stem, rows in by_stem.items()
        for measure in LEVEL_MEASURES
    ]
    levels += [
        {"source": MIXTURE, "measure": measure, **_summary(items[f"mixture_{measure}"])}
        for measure in LEVEL_MEASURES
    ]
    coverage = (
        stems.groupby(["stem", "source_track"], sort=False).size().rename("items").reset_index()
    )
    rank = {stem: i for i, stem in enumerate(dataset.stem_names)}
    coverage = coverage.sort_values(
        ["stem", "source_track"], key=lambda c: c.map(rank) if c.name == "stem" else c
    ).reset_index(drop=True)
    modes = {str(mode): int(n) for mode, n in items["mode"].value_counts().sort_index().items()}
    return DatasetStats(
        n_items=len(items),
        modes=modes,
        effects=_effects(dataset),
        parameters=pd.DataFrame(
            parameters, columns=["stem", "column", "n", "min", "median", "max"]
        ),
        levels=pd.DataFrame(levels),
        coverage=coverage,
    )
