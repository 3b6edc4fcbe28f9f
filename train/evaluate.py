"""`mstrain eval`: separate every track of a MUSDB18 subset and score it with museval.

Two numbers per source, as the source report gives them:
- cSDR: museval's SDR over 1-second frames, median over the frames of a track, then median
  over tracks (the SiSEC 2018 convention);
- uSDR: the SDR of the whole track, 10 log10(sum s^2 / sum (s - s_hat)^2) over all channels and
  samples, then the mean over tracks (the MDX challenge convention).
Silent reference frames make museval return NaN; the medians skip them.

A trained run and the NMF baseline (`mstrain eval --model nmf`, train/nmf.py) are scored by
the same `evaluate_tracks`, so their tables line up.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import museval
import numpy as np
import torch
from tqdm import tqdm

from train.inference import separate
from train.models.base import SeparationModel
from train.validation import open_musdb, track_audio

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
EPS = 1e-8


def nanmedian(values: np.ndarray) -> float:
    """Median ignoring NaN; NaN (without a warning) when nothing is left."""
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def whole_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10((np.sum(reference**2) + EPS) / (error + EPS)))


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
    track: Any, sources: Sequence[str], estimate: Estimator, out: Path
) -> dict[str, dict[str, float]]:
    """Separate one track, write museval's JSON for it, return cSDR/uSDR per source."""
    rate = int(track.rate)
    audio = track_audio(track, sources)
    references = audio[1:]
    estimates = estimate(audio[0], references, rate)
    sdr, isr, sir, sar = frame_scores(
        references.transpose(0, 2, 1), estimates.transpose(0, 2, 1), audio[0].T, rate
    )
    store = museval.TrackStore(track_name=track.name, win=1.0, hop=1.0)
    for i, source in enumerate(sources):
        store.add_target(source, {"SDR": sdr[i], "ISR": isr[i], "SIR": sir[i], "SAR": sar[i]})
    path = out / track.subset / f"{track.name}.json"
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
        csdr = np.array([scores[source]["csdr"] for scores in per_track.values()])
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
    """The summary table; `note` (one paragraph) says what produced it, e.g. an oracle."""
    lines = [
        f"{tracks} tracks of the {subset!r} subset: cSDR median of frame medians, uSDR mean.",
        "",
        *([note, ""] if note else []),
        "| source | cSDR (dB) | uSDR (dB) |",
        "|---|---:|---:|",
        *(f"| {r['source']} | {r['csdr']:.3f} | {r['usdr']:.3f} |" for r in rows),
    ]
    return "\n".join(lines) + "\n"


def evaluate_tracks(
    tracks: list[Any],
    sources: Sequence[str],
    estimate: Estimator,
    subset: str,
    out: Path,
    note: str = "",
) -> str:
    """Score every track; write JSON per track, summary CSV and markdown; return the markdown."""
    per_track = {
        track.name: score_track(track, sources, estimate, out)
        for track in tqdm(tracks, desc="eval", disable=None)
    }
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
) -> str:
    """Score a trained model on every track of `subset` (see `evaluate_tracks`)."""
    tracks = open_musdb(root, subset)
    model.to(device)

    def estimate(mixture: np.ndarray, references: np.ndarray, rate: int) -> np.ndarray:
        return separate(model, mixture, rate, device, chunk_seconds)

    return evaluate_tracks(tracks, model.sources, estimate, subset, out)
