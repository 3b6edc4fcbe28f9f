"""PNG plots of a dataset's distributions (`msaug stats --plot DIR`).

Summaries hide shapes: a parameter drawn uniformly and one stuck at its bounds have the same
min and max. Figures are built without pyplot (no global backend or figure state) and rendered
by Agg, so plotting works on a headless GPU box.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from manifests.dataset import Dataset
from manifests.files import atomic_path
from manifests.schema import MIXTURE
from manifests.stats import LEVEL_MEASURES, DatasetStats, parameter_columns

MUSDB_COLORS = {"vocals": "tab:blue", "drums": "tab:orange", "bass": "tab:green"}
MUSDB_COLORS.update(other="tab:red", **{MIXTURE: "black"})
_CYCLE = ("tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def _color(name: str, index: int) -> str:
    return MUSDB_COLORS.get(name, _CYCLE[index % len(_CYCLE)])


def _histograms(ax, samples: dict[str, pd.Series], title: str) -> None:
    """Step histograms on shared bins, one per source, so shapes compare at a glance."""
    samples = {name: values.dropna() for name, values in samples.items()}
    samples = {name: values for name, values in samples.items() if len(values)}
    ax.set_title(title)
    if not samples:
        ax.text(0.5, 0.5, "not applied", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        return
    values = np.concatenate(list(samples.values()))
    bins = int(np.clip(np.sqrt(len(values)), 5, 40))  # fewer, fuller bins for small datasets
    edges = np.histogram_bin_edges(values, bins=bins)
    for index, (name, values) in enumerate(samples.items()):
        ax.hist(
            values,
            bins=edges,
            histtype="step",
            linewidth=1.5,
            color=_color(name, index),
            label=f"{name} (n={len(values)})",
        )
    ax.set_ylabel("stems" if MIXTURE not in samples else "files")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)


def parameters_figure(dataset: Dataset) -> Figure:
    stems = dataset.stems
    # Constant columns (a fixed wet level, say) make empty-looking panels; the table has them.
    columns = [c for c in parameter_columns(dataset) if stems[c].nunique() > 1] or ["-"]
    cols = 3
    rows = math.ceil(len(columns) / cols)
    fig = Figure(figsize=(5 * cols, 3.6 * rows), layout="constrained")
    fig.suptitle(f"Effect parameters where applied ({len(dataset)} items)")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, column in zip(axes, columns, strict=False):
        values = stems[column] if column in stems else pd.Series(dtype=float)
        samples = {stem: values[stems["stem"] == stem] for stem in dataset.stem_names}
        _histograms(ax, samples, column)
        ax.set_xlabel(column)
    for ax in axes[len(columns) :]:
        ax.set_visible(False)
    return fig


def levels_figure(dataset: Dataset) -> Figure:
    stems, items = dataset.stems, dataset.items
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    fig.suptitle(f"Levels of stems and mixtures ({len(dataset)} items)")
    for ax, measure in zip(fig.subplots(1, len(LEVEL_MEASURES)), LEVEL_MEASURES, strict=True):
        samples = {stem: stems.loc[stems["stem"] == stem, measure] for stem in dataset.stem_names}
        samples[MIXTURE] = items[f"mixture_{measure}"]
        _histograms(ax, samples, measure)
        ax.set_xlabel("RMS (dBFS)" if measure == "rms_db" else "peak (linear, 1.0 = full scale)")
    return fig


def coverage_figure(stats: DatasetStats) -> Figure:
    """Grouped horizontal bars, one row per source track, so long track names stay legible."""
    counts = stats.coverage.pivot(index="source_track", columns="stem", values="items")
    order = list(dict.fromkeys(stats.coverage["stem"]))
    counts = counts.reindex(columns=[s for s in order if s in counts.columns]).fillna(0)
    counts = counts.sort_index(ascending=False)
    fig = Figure(figsize=(10, 1.6 + 0.32 * len(counts)), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / max(len(counts.columns), 1)
    positions = np.arange(len(counts))
    for i, stem in enumerate(counts.columns):
        offset = (len(counts.columns) - 1 - i) * height - 0.4 + height / 2
        ax.barh(positions + offset, counts[stem], height=height, color=_color(stem, i), label=stem)
    ax.set_yticks(positions, counts.index, fontsize=8)
    ax.set_xlabel("items using the track")
    ax.set_title(f"Source-track coverage per stem ({stats.n_items} items, {len(counts)} tracks)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as temp:
        fig.savefig(temp, format="png", dpi=100)
    return path


def write_plots(dataset: Dataset, stats: DatasetStats, folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return [
        _save(parameters_figure(dataset), folder / "parameters.png"),
        _save(levels_figure(dataset), folder / "levels.png"),
        _save(coverage_figure(stats), folder / "coverage.png"),
    ]
