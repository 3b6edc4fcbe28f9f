"""`mstrain compare`: is one training recipe better than another, and by how much, with what
uncertainty?

A table of two means says nothing without its noise: on 3 demo songs a difference of a dB is
chance. Every variant is scored on the same tracks (`mstrain eval` writes `per_track.json`), so
differences are paired per track. The 95% interval comes from a bootstrap over tracks, and,
where a variant has several runs (seeds), over seeds as well: each replicate resamples the
tracks, and for every variant the seeds, with replacement. The statistics are the ones the
summaries use: uSDR is the mean over tracks, cSDR the median over tracks (per source; "mean"
averages the sources), so the interval is for the difference of those summaries.

With `--paired-seeds`, the k-th run of every variant is taken to share its seed (the same
model initialisation and draw stream), and each replicate resamples the same seeds for every
variant: what the seed does to all variants alike then cancels in the difference, as the
tracks' difficulty does. Evals made with `--usdr-only` are compared on uSDR alone.

    mstrain compare base=runs/a/eval-test,runs/a2/eval-test aug=runs/b/eval-test --out cmp
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from manifests.files import atomic_path
from train.errors import TrainError

PER_TRACK = "per_track.json"
EVAL_JSON = "eval.json"
"""What `mstrain eval` scored: the run folder and its training seed (`--paired-seeds` checks
that the k-th runs share it)."""
METRICS = ("usdr", "csdr")
NAMES = {"usdr": "uSDR", "csdr": "cSDR"}
COMPARE_MD = "compare.md"
COMPARE_PNG = "compare.png"


@dataclass(frozen=True)
class Variant:
    """One recipe: its label and its runs' scores, (seeds, tracks, sources, metrics)."""

    label: str
    scores: np.ndarray


@dataclass(frozen=True)
class Scores:
    """What `load_variants` read: the variants, and the tracks, sources and metrics that
    every run was scored on (a metric missing from any run is left out)."""

    variants: list[Variant]
    tracks: list[str]
    sources: list[str]
    metrics: tuple[str, ...]
    seeds: dict[str, list[int | None]]
    """Each variant's runs' training seeds, where their evals recorded them."""


def _eval_folder(path: Path) -> Path:
    """`path` if it is an eval folder, or the one eval-* folder of a run folder."""
    if (path / PER_TRACK).is_file():
        return path
    candidates = sorted(path.glob(f"eval-*/{PER_TRACK}"))
    if len(candidates) != 1:
        found = "none" if not candidates else ", ".join(str(c.parent) for c in candidates)
        raise TrainError(
            f"{path} needs exactly one {PER_TRACK} (an `mstrain eval` folder, or a run with one "
            f"eval-* folder); found {found}"
        )
    return candidates[0].parent


def _per_track(folder: Path) -> dict[str, dict[str, dict[str, float]]]:
    """An eval folder's scores, checked for the shape `mstrain eval` writes: a non-empty
    object of tracks, each an object of sources, each an object of metrics with numbers
    (null for a score museval could not give)."""
    path = folder / PER_TRACK
    try:
        scores = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TrainError(f"{path} is not readable JSON ({exc})") from None
    shaped = (
        isinstance(scores, dict)
        and scores
        and all(isinstance(by_source, dict) and by_source for by_source in scores.values())
        and all(
            isinstance(metrics, dict)
            and all(
                value is None or (isinstance(value, int | float) and not isinstance(value, bool))
                for value in metrics.values()
            )
            for by_source in scores.values()
            for metrics in by_source.values()
        )
    )
    if not shaped:
        raise TrainError(
            f"{path} is not an `mstrain eval` result (tracks -> sources -> metrics -> numbers); "
            "score the run again with mstrain eval"
        )
    return {
        track: {
            source: {m: math.nan if v is None else float(v) for m, v in metrics.items()}
            for source, metrics in by_source.items()
        }
        for track, by_source in scores.items()
    }


def _seed(folder: Path) -> int | None:
    """The training seed `mstrain eval` recorded for its run (None for older evals)."""
    try:
        return json.loads((folder / EVAL_JSON).read_text())["seed"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def parse_variants(args: list[str]) -> list[tuple[str, list[Path]]]:
    """`LABEL=DIR[,DIR...]` (several runs of one recipe, e.g. seeds) or a plain `DIR`."""
    variants = []
    for arg in args:
        label, _, dirs = arg.rpartition("=") if "=" in arg else (Path(arg).as_posix(), "", arg)
        folders = [Path(d) for d in dirs.split(",") if d]
        if not label or not folders:
            raise TrainError(f"variant {arg!r} needs LABEL=DIR[,DIR...] with a label and a folder")
        variants.append((label, folders))
    if len(variants) < 2:
        raise TrainError("compare needs at least two variants (LABEL=DIR[,DIR...] each)")
    labels = [label for label, _ in variants]
    if len(set(labels)) != len(labels):
        raise TrainError(f"variant labels must differ, got {labels}")
    return variants


def load_variants(variants: list[tuple[str, list[Path]]]) -> Scores:
    """The score arrays, refusing runs scored on different tracks or sources."""
    folders = [(label, [_eval_folder(d) for d in dirs]) for label, dirs in variants]
    read = [(label, [(f, _per_track(f)) for f in dirs]) for label, dirs in folders]
    first = read[0][1][0][1]
    tracks, sources = sorted(first), list(next(iter(first.values())))
    metrics = set(METRICS)
    for _, runs in read:
        for folder, scores in runs:
            run_tracks, run_sources = sorted(scores), list(next(iter(scores.values())))
            if run_tracks != tracks or run_sources != sources:
                raise TrainError(
                    f"{folder} was scored on other tracks or sources than the first run "
                    f"({len(run_tracks)} tracks, {run_sources}); compare runs scored on the same"
                )
            metrics &= {
                m for m in METRICS if all(m in s for t in tracks for s in scores[t].values())
            }
    kept = tuple(m for m in METRICS if m in metrics)
    if not kept:
        raise TrainError(f"the runs share no metric of {', '.join(METRICS)}; score them alike")
    loaded = [
        Variant(
            label,
            np.asarray(
                [
                    [[[s[t][src][m] for m in kept] for src in sources] for t in tracks]
                    for _, s in runs
                ],
                dtype=np.float64,
            ),
        )
        for label, runs in read
    ]
    seeds = {label: [_seed(f) for f in dirs] for label, dirs in folders}
    return Scores(loaded, tracks, sources, kept, seeds)


def _summary(scores: np.ndarray, metrics: tuple[str, ...]) -> np.ndarray:
    """(..., seeds, tracks, sources, metrics) -> (..., sources + 1, metrics): the seed mean
    per track, then uSDR mean and cSDR median over tracks; the last row averages sources."""
    per_track = scores.mean(axis=-4)
    over_tracks = {"usdr": np.nanmean, "csdr": np.nanmedian}
    table = np.stack(
        [over_tracks[m](per_track[..., k], axis=-2) for k, m in enumerate(metrics)], axis=-1
    )
    return np.concatenate([table, table.mean(axis=-2, keepdims=True)], axis=-2)


def check_paired(scores: Scores) -> None:
    """Pairing is by position: the k-th runs must share their seed. Where the evals recorded
    the seeds, a mismatch (runs listed in another order) is refused."""
    counts = {v.label: len(v.scores) for v in scores.variants}
    if len(set(counts.values())) != 1 or min(counts.values()) < 2:
        raise TrainError(
            "--paired-seeds needs the same number of runs (2 or more, seeds in the same order) "
            f"in every variant; got {counts}"
        )
    for k, column in enumerate(zip(*scores.seeds.values(), strict=True)):
        known = {seed for seed in column if seed is not None}
        if len(known) > 1:
            listed = ", ".join(f"{label}: {seeds[k]}" for label, seeds in scores.seeds.items())
            raise TrainError(
                f"--paired-seeds pairs the runs in the order given, but run {k + 1} of each "
                f"variant was trained with different seeds ({listed}); list them in seed order"
            )


def bootstrap(
    variants: list[Variant],
    metrics: tuple[str, ...],
    replicates: int,
    seed: int,
    paired_seeds: bool = False,
) -> dict[str, np.ndarray]:
    """Per variant: its summary, its difference to the first, and the difference's 95% CI,
    each (sources + 1, metrics); the CI as (2, sources + 1, metrics)."""
    rng = np.random.default_rng(seed)
    n_tracks = variants[0].scores.shape[1]
    tracks = rng.integers(0, n_tracks, size=(replicates, n_tracks))
    n_runs = len(variants[0].scores)
    shared = rng.integers(0, n_runs, size=(replicates, n_runs)) if paired_seeds else None
    resampled = {}
    for v in variants:
        seeds = (
            shared
            if shared is not None
            else rng.integers(0, len(v.scores), size=(replicates, len(v.scores)))
        )
        picked = v.scores[seeds[:, :, None], tracks[:, None, :]]  # (B, seeds, tracks, S, M)
        resampled[v.label] = _summary(picked, metrics)
    base = variants[0].label
    result: dict[str, np.ndarray] = {}
    for v in variants:
        result[f"{v.label}:summary"] = _summary(v.scores, metrics)
        result[f"{v.label}:difference"] = result[f"{v.label}:summary"] - _summary(
            variants[0].scores, metrics
        )
        diffs = resampled[v.label] - resampled[base]
        result[f"{v.label}:ci"] = np.nanpercentile(diffs, [2.5, 97.5], axis=0)
    return result


def markdown(scores: Scores, result: dict[str, np.ndarray], paired_seeds: bool) -> str:
    variants = scores.variants
    base = variants[0].label
    runs = ", ".join(
        f"{v.label} ({len(v.scores)} run{'s' * (len(v.scores) > 1)})" for v in variants
    )
    how = (
        "over tracks and seeds, the k-th runs of all variants paired"
        if paired_seeds
        else ("over tracks (and each variant's seeds)")
    )
    silence = " An all-silent estimate scores 0 dB uSDR." if "usdr" in scores.metrics else ""
    lines = [
        f"{len(scores.tracks)} tracks; variants {runs}. uSDR: mean over tracks; cSDR: median "
        f"over tracks. Differences against {base}, paired per track, with 95% bootstrap "
        f"intervals {how}. An interval that contains 0 means no significant difference." + silence,
        "",
        "| source | metric | " + " | ".join(v.label for v in variants) + " |",
        "|---|---|" + "---:|" * len(variants),
    ]
    for row, source in enumerate([*scores.sources, "mean"]):
        for col, metric in enumerate(scores.metrics):
            cells = []
            for v in variants:
                value = result[f"{v.label}:summary"][row, col]
                if v.label == base:
                    cells.append(f"{value:.2f}")
                    continue
                diff = result[f"{v.label}:difference"][row, col]
                low, high = result[f"{v.label}:ci"][:, row, col]
                cells.append(f"{value:.2f} ({diff:+.2f} [{low:+.2f}, {high:+.2f}])")
            lines.append(f"| {source} | {NAMES[metric]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(scores: Scores, result: dict[str, np.ndarray], path: Path, paired_seeds: bool) -> None:
    """Differences to the first variant with their intervals, one panel per metric."""
    others = scores.variants[1:]
    rows = [*scores.sources, "mean"]
    figure = Figure(
        figsize=(2.5 * len(scores.metrics) + 1.2 * len(others), 3.6), layout="constrained"
    )
    for col, metric in enumerate(scores.metrics):
        ax = figure.add_subplot(1, len(scores.metrics), col + 1)
        width = 0.8 / max(len(others), 1)
        for k, v in enumerate(others):
            x = np.arange(len(rows)) + (k - (len(others) - 1) / 2) * width
            diff = result[f"{v.label}:difference"][:, col]
            low, high = result[f"{v.label}:ci"][:, :, col]
            ax.errorbar(x, diff, yerr=[diff - low, high - diff], fmt="o", capsize=3, label=v.label)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(rows)), rows)
        paired = ", seeds paired" if paired_seeds else ""
        ax.set_title(
            f"{NAMES[metric]} difference to {scores.variants[0].label} (dB, 95% CI{paired})"
        )
        ax.legend(fontsize="small")
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png", dpi=120)


def compare(
    args: list[str],
    out: Path,
    replicates: int = 2000,
    seed: int = 0,
    paired_seeds: bool = False,
) -> str:
    """Load, bootstrap, write compare.md and compare.png into `out`; return the table."""
    if replicates < 100:
        raise TrainError(f"--bootstrap needs at least 100 replicates, got {replicates}")
    scores = load_variants(parse_variants(args))
    if paired_seeds:
        check_paired(scores)
    result = bootstrap(scores.variants, scores.metrics, replicates, seed, paired_seeds)
    text = markdown(scores, result, paired_seeds)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / COMPARE_MD) as temp:
        temp.write_text(text)
    plot(scores, result, out / COMPARE_PNG, paired_seeds)
    return text
