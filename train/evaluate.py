"""`mstrain eval`: separate every track of a MUSDB18 subset and score it with museval.

Two numbers per source, as the source report gives them:
- cSDR: museval's SDR over 1-second frames, median over the frames of a track, then median
  over tracks (the SiSEC 2018 convention);
- uSDR: the SDR of the whole track, 10 log10(sum s^2 / sum (s - s_hat)^2) over all channels and
  samples, then the mean over tracks (the MDX challenge convention).
Silent reference frames make museval return NaN; the medians skip them.

A trained run and the NMF baseline (`mstrain eval --model nmf`, train/nmf.py) are scored by
the same `evaluate_tracks`, so their tables line up. `--tracks` scores some tracks of the
subset (`select_tracks`); `--jobs` scores tracks in worker processes (`score_all`).
"""

from __future__ import annotations

import csv
import difflib
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import museval
import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from train.errors import TrainError
from train.inference import OVERLAP, separate
from train.models.base import SeparationModel
from train.sdr import whole_sdr
from train.validation import open_musdb, track_audio

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"


def nanmedian(values: np.ndarray) -> float:
    """Median ignoring NaN; NaN (without a warning) when nothing is left."""
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def frame_scores(
    references: np.ndarray, estimates: np.ndarray, mixture: np.ndarray, rate: int
) -> tuple[np.ndarray, ...]:
    """museval's (SDR, ISR, SIR, SAR), each (sources, frames), for (sources, time, channels).

    bss_eval needs two sources at least: a one-source model is scored against the residual
    (mixture minus source) as the second source, which is dropped from the result. bss_eval
    also refuses an all-zero estimate; a model that outputs silence for a source gets a -200 dB
    dither there instead, which scores the SDR of silence (about 0 dB), not an error.
    """
    silent = ~estimates.any(axis=(1, 2))
    if silent.any():
        dither = 1e-10 * np.random.default_rng(0).standard_normal(estimates.shape[1:])
        estimates = np.where(silent[:, None, None], dither, estimates)
    single = len(references) == 1
    if single:
        references = np.concatenate([references, mixture[None] - references])
        estimates = np.concatenate([estimates, mixture[None] - estimates])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scores = museval.evaluate(references, estimates, win=rate, hop=rate)
    return tuple(s[:1] if single else s for s in scores)


Estimator = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
"""(mixture (channels, time), references (sources, channels, time), rate) -> estimates shaped
like the references. A trained model reads only the mixture; the references are passed so that
an oracle baseline (train/nmf.py) goes through the same scoring path."""


def score_track(
    track: Any, sources: Sequence[str], estimate: Estimator, out: Path, csdr: bool = True
) -> dict[str, dict[str, float]]:
    """Separate one track, write museval's JSON for it, return cSDR/uSDR per source.

    Without `csdr` only the whole-track SDR is computed: museval's framewise bss_eval is most
    of an eval's time (minutes for a few dozen short songs), the uSDR a few array sums.
    """
    rate = int(track.rate)
    audio = track_audio(track, sources)
    references = audio[1:]
    estimates = estimate(audio[0], references, rate)
    path = out / track.subset / f"{track.name}.json"
    if not csdr:
        path.unlink(missing_ok=True)  # an earlier full eval's frames would disagree
        return {
            source: {"usdr": whole_sdr(references[i], estimates[i])}
            for i, source in enumerate(sources)
        }
    sdr, isr, sir, sar = frame_scores(
        references.transpose(0, 2, 1), estimates.transpose(0, 2, 1), audio[0].T, rate
    )
    store = museval.TrackStore(track_name=track.name, win=1.0, hop=1.0)
    for i, source in enumerate(sources):
        store.add_target(source, {"SDR": sdr[i], "ISR": isr[i], "SIR": sir[i], "SAR": sar[i]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(store.json)
    return {
        source: {"csdr": nanmedian(sdr[i]), "usdr": whole_sdr(references[i], estimates[i])}
        for i, source in enumerate(sources)
    }


def summarize(per_track: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """One row per source plus their mean: cSDR median over tracks, uSDR mean over tracks."""
    sources = list(next(iter(per_track.values())))
    rows = []
    for source in sources:
        csdr = np.array([scores[source].get("csdr", np.nan) for scores in per_track.values()])
        usdr = np.array([scores[source]["usdr"] for scores in per_track.values()])
        rows.append({"source": source, "csdr": nanmedian(csdr), "usdr": float(np.mean(usdr))})
    rows.append(
        {
            "source": "mean",
            "csdr": float(np.mean([r["csdr"] for r in rows])),
            "usdr": float(np.mean([r["usdr"] for r in rows])),
        }
    )
    return rows


def markdown(rows: list[dict[str, Any]], subset: str, tracks: int, note: str = "") -> str:
    """The summary table; `note` (one paragraph) says what produced it, e.g. an oracle. A cSDR
    that was not scored (`--usdr-only`), or only over silent references, shows as `-`."""
    lines = [
        f"{tracks} tracks of the {subset!r} subset: cSDR median of frame medians, uSDR mean.",
        "",
        *([note, ""] if note else []),
        "| source | cSDR (dB) | uSDR (dB) |",
        "|---|---:|---:|",
        *(f"| {r['source']} | {_cell(r['csdr'])} | {_cell(r['usdr'])} |" for r in rows),
    ]
    return "\n".join(lines) + "\n"


def _cell(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3f}"


def select_tracks(tracks: list[Any], names: Sequence[str], subset: str) -> list[Any]:
    """The tracks `--tracks` names (all of them when `names` is empty), in the subset's order,
    so the summary and per_track.json read the same whatever order the names were typed in."""
    if not names:
        return tracks
    held = [track.name for track in tracks]
    for name in names:
        if name not in held:
            hint = track_hint(name, held)
            raise TrainError(f"--tracks {name!r} is not a track of the {subset!r} subset; {hint}")
    wanted = set(names)
    return [track for track in tracks if track.name in wanted]


def track_hint(name: str, held: list[str], shown: int = 5) -> str:
    """'did you mean' for a near miss (case ignored), else the first track names held."""
    lower = {h.lower(): h for h in held}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    if close:
        return f"did you mean {lower[close[0]]!r}?"
    more = f", ... ({len(held)} in all)" if len(held) > shown else ""
    return "it holds " + ", ".join(repr(h) for h in held[:shown]) + more


@contextmanager
def single_threaded() -> Iterator[None]:
    """One torch and one BLAS thread, restored after.

    torch's CPU kernels round differently with the number of threads they split work over
    (U-Net estimates move by ~1e-7), and joblib's workers get fewer threads than the parent.
    Pinning every track to one thread makes its scores a function of the track alone, the
    same bytes at any `--jobs` on any number of cores; `--jobs` is how eval uses more cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def score_pinned(
    track: Any, sources: Sequence[str], estimate: Estimator, out: Path, csdr: bool = True
) -> dict[str, dict[str, float]]:
    """`score_track` on one thread (`single_threaded`), in the parent or a worker."""
    with single_threaded():
        return score_track(track, sources, estimate, out, csdr)


def score_all(
    tracks: list[Any],
    sources: Sequence[str],
    estimate: Estimator,
    out: Path,
    jobs: int,
    csdr: bool = True,
) -> dict[str, dict[str, dict[str, float]]]:
    """`score_track` of each track, in the tracks' order, in `jobs` worker processes.

    Each track is separated and scored on its own, on one thread, from inputs that do not
    depend on the others (frame_scores' dither has a fixed seed), so a worker computes the
    parent's bytes: the numbers are the same at any `jobs`. Workers receive the estimator
    pickled (a trained model's weights included), so each holds its own copy of the model.
    """
    if jobs == 0:
        raise TrainError("--jobs must be a worker count (1 or more) or negative (all CPUs); got 0")
    workers = min(effective_n_jobs(jobs), len(tracks))
    if workers <= 1:
        results = (score_pinned(track, sources, estimate, out, csdr) for track in tracks)
    else:
        tasks = (delayed(score_pinned)(track, sources, estimate, out, csdr) for track in tracks)
        results = Parallel(n_jobs=workers, return_as="generator")(tasks)
    progress = tqdm(results, total=len(tracks), desc="eval", disable=None)
    return {track.name: scores for track, scores in zip(tracks, progress, strict=True)}


def evaluate_tracks(
    tracks: list[Any],
    sources: Sequence[str],
    estimate: Estimator,
    subset: str,
    out: Path,
    note: str = "",
    jobs: int = 1,
    csdr: bool = True,
) -> str:
    """Score every track; write JSON per track, summary CSV and markdown; return the markdown."""
    per_track = score_all(tracks, sources, estimate, out, jobs, csdr)
    rows = summarize(per_track)
    (out / "per_track.json").write_text(json.dumps(per_track, indent=2) + "\n")
    with open(out / SUMMARY_CSV, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["source", "csdr", "usdr"])
        writer.writeheader()
        writer.writerows(rows)
    table = markdown(rows, subset, len(tracks), note)
    (out / SUMMARY_MD).write_text(table)
    return table


def evaluate_run(
    model: SeparationModel,
    root: Path,
    subset: str,
    out: Path,
    device: torch.device,
    chunk_seconds: float,
    names: Sequence[str] = (),
    jobs: int = 1,
    overlap: float = OVERLAP,
    csdr: bool = True,
) -> str:
    """Score a trained model on the tracks of `subset` that `names` selects (all when empty),
    in `jobs` worker processes (see `evaluate_tracks`)."""
    tracks = select_tracks(open_musdb(root, subset), names, subset)
    model.to(device)

    def estimate(mixture: np.ndarray, references: np.ndarray, rate: int) -> np.ndarray:
        return separate(model, mixture, rate, device, chunk_seconds, overlap)

    return evaluate_tracks(tracks, model.sources, estimate, subset, out, jobs=jobs, csdr=csdr)
