"""`msaug render`: draw, render and write augmented items in parallel, resumably.

Items go to joblib workers in batches; each worker opens the sources once (cached per
process), plans and renders its items, writes their audio atomically and returns the manifest
rows. The parent alone writes manifest parts, so rows never interleave. Running the same
command again on the same `--out` skips finished items and gives byte-identical results; a
larger `--n` extends the dataset.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from augment.backends import execution_backend
from augment.chain import apply_chain
from augment.config import RenderConfig, Suitability, load_config, parse_mode
from augment.errors import ConfigError, SourceError
from augment.plan import DrawFailure, ItemPlan, draw_item
from augment.segments import levels
from augment.sources import SourceRoot, Track
from augment.stretch import check_backend, frames_to_read
from manifests import DatasetWriter, ItemRecord, StemRecord
from manifests.files import SUBTYPES, quantize, write_audio
from manifests.records import effect_columns
from manifests.schema import MIXTURE, audio_path
from manifests.writer import package_version

SPLIT = "train"
CLIP_LIMIT = 0.98
"""Peak the mixture and each stem may reach; above it all stems share one scale down."""


def item_id(index: int) -> str:
    return f"{index:07d}"


@dataclass(frozen=True)
class RenderSettings:
    """Everything that decides the bytes of item i (the dataset's identity), plus n."""

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

    @property
    def frames(self) -> int:
        return round(self.seconds * self.sample_rate)


@dataclass
class RenderSummary:
    out: Path
    rendered: int = 0
    skipped: int = 0
    total_items: int = 0
    hours: float = 0.0
    bytes: int = 0
    attempts: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: dict[int, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Job:
    """What a worker needs for a batch: plain data only (pedalboard objects do not pickle)."""

    settings: RenderSettings
    config: RenderConfig
    weights: dict[str, float]
    track_keys: tuple[tuple[str, str], ...]
    listing_digest: str
    out: str
    indices: tuple[int, ...]


@cache
def _open_sources(root: str, form: str, listing_digest: str) -> SourceRoot:
    """One SourceRoot per worker process, reused by every batch it runs.

    The digest of the parent's track listing is part of the key, so a worker that outlives
    one render (loky reuses workers) never serves a stale listing to the next.
    """
    return SourceRoot.open(root, form)  # type: ignore[arg-type]


def render_item(
    plan: ItemPlan,
    audio: dict[str, np.ndarray],
    settings: RenderSettings,
    suitability: Suitability,
    out: Path,
) -> tuple[ItemRecord, list[StemRecord]]:
    """Apply each stem's chain, scale once if the mix would clip, write the five files."""
    sr, frames, subtype = settings.sample_rate, settings.frames, settings.subtype
    rendered = {}
    for stem in plan.stems:
        y = apply_chain(
            audio[stem.stem], sr, stem.effects, frames, settings.stretch_backend, settings.quality
        )
        rendered[stem.stem] = y * np.float32(10 ** (stem.gain_db / 20))
    mix = sum(rendered.values())
    peak = max(float(np.abs(mix).max()), *(float(np.abs(y).max()) for y in rendered.values()))
    if not np.isfinite(peak):
        raise RuntimeError(f"item {plan.index} rendered non-finite samples; report this as a bug")
    scale = min(1.0, CLIP_LIMIT / peak) if peak > 0 else 1.0
    stems_q = {s: quantize(y * np.float32(scale), subtype) for s, y in rendered.items()}
    mixture = quantize(sum(stems_q.values()), subtype)
    iid = item_id(plan.index)
    stem_records = []
    for stem in plan.stems:
        rel = audio_path(SPLIT, iid, stem.stem, settings.format)
        info = write_audio(out / rel, stems_q[stem.stem], sr, subtype)
        measured = levels(stems_q[stem.stem], suitability)
        chain = [e.to_dict() for e in stem.effects]
        stem_records.append(
            StemRecord(
                item_id=iid,
                stem=stem.stem,
                source_track=stem.track.name,
                source_subset=stem.track.subset,
                offset_seconds=stem.start / sr,
                duration_seconds=audio[stem.stem].shape[1] / sr,
                gain_db=stem.gain_db,
                chain=json.dumps(chain),
                path=rel,
                checksum=info.checksum,
                bytes=info.bytes,
                rms_db=measured.rms_db,
                peak=measured.peak,
                activity=measured.activity,
                **effect_columns(chain),
            )
        )
    rel = audio_path(SPLIT, iid, MIXTURE, settings.format)
    info = write_audio(out / rel, mixture, sr, subtype)
    measured = levels(mixture, suitability)
    item = ItemRecord(
        item_id=iid,
        split=SPLIT,
        mode=plan.mode,
        seconds=settings.seconds,
        sample_rate=sr,
        channels=int(mixture.shape[0]),
        num_frames=frames,
        run_seed=settings.seed,
        item_index=plan.index,
        item_seed=plan.item_seed,
        mixture_path=rel,
        checksum=info.checksum,
        bytes=info.bytes,
        common_scale=scale,
        mixture_rms_db=measured.rms_db,
        mixture_peak=measured.peak,
        attempts=plan.attempts,
    )
    return item, stem_records


def _render_batch(job: _Job) -> dict[str, Any]:
    sources = _open_sources(job.settings.root, job.settings.source_form, job.listing_digest)
    tracks = [sources.track(subset, name) for subset, name in job.track_keys]
    items, stems, failed, rejected = [], [], {}, Counter()
    for index in job.indices:
        try:
            plan, audio = draw_item(
                index,
                job.settings.seed,
                job.weights,
                job.config,
                tracks,
                job.settings.frames,
                job.settings.sample_rate,
                rejected,
            )
        except DrawFailure as failure:
            failed[index] = dict(failure.reasons)
            continue
        item, item_stems = render_item(
            plan, audio, job.settings, job.config.suitability, Path(job.out)
        )
        items.append(item)
        stems.extend(item_stems)
    return {
        "indices": job.indices,
        "items": items,
        "stems": stems,
        "failed": failed,
        "rejected": rejected,
    }


def _eligible_tracks(
    sources: SourceRoot, settings: RenderSettings, config: RenderConfig
) -> list[Track]:
    tracks = sources.tracks(settings.subset, None if settings.split == "all" else settings.split)
    if not tracks:
        raise SourceError(
            f"{sources.root} has no tracks in subset {settings.subset!r} with split "
            f"{settings.split!r}; check --subset / --split"
        )
    longest = frames_to_read(settings.frames, config.max_stretch(), settings.sample_rate)
    long_enough = [t for t in tracks if t.num_frames >= longest]
    if not long_enough:
        raise SourceError(
            f"no track in {sources.root}/{settings.subset} is long enough: a "
            f"{settings.seconds} s segment at stretch up to {config.max_stretch()} needs "
            f"{longest / settings.sample_rate:.1f} s and the longest track has "
            f"{max(t.seconds for t in tracks):.1f} s; use shorter --seconds"
        )
    return long_enough


def _check_settings(settings: RenderSettings) -> None:
    if settings.seconds <= 0 or settings.sample_rate < 8000:
        raise ConfigError("--seconds must be positive and --sr at least 8000")
    if settings.format not in ("wav", "flac"):
        raise ConfigError(f"--format must be wav or flac, got {settings.format!r}")
    if settings.subtype not in SUBTYPES or (
        settings.format == "flac" and settings.subtype == "FLOAT"
    ):
        raise ConfigError(
            f"--subtype must be one of {SUBTYPES} (flac takes PCM only), got {settings.subtype!r}"
        )
    if settings.split not in ("train", "valid", "all"):
        raise ConfigError(f"--split must be train, valid or all, got {settings.split!r}")
    check_backend(settings.stretch_backend, settings.quality)


_WAVE = 32


def _run_batches(jobs_list: list[_Job], n_jobs: int, streaming: bool) -> Iterator[dict[str, Any]]:
    """Batch results as they finish. Backends that cannot stream results (ray's) run in waves
    of `_WAVE` batches, so manifest parts still land, and progress still moves, as work ends."""
    if streaming:
        yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_render_batch)(job) for job in jobs_list
        )
        return
    for start in range(0, len(jobs_list), _WAVE):
        wave = jobs_list[start : start + _WAVE]
        yield from Parallel(n_jobs=n_jobs)(delayed(_render_batch)(job) for job in wave)


def listing_digest(tracks: list[Track]) -> str:
    listing = "\n".join(f"{t.subset}/{t.name}:{t.num_frames}:{t.sample_rate}" for t in tracks)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def identity(settings: RenderSettings, config: RenderConfig, tracks: list[Track]) -> dict[str, Any]:
    """What a resumed or extended render must share with the original (not n, not jobs)."""
    fields = asdict(settings)
    fields.pop("config_path")
    fields["root"] = str(Path(settings.root).resolve())
    return {
        **fields,
        "mode_weights": parse_mode(settings.mode),
        "config": config.to_dict(),
        "tracks_digest": listing_digest(tracks),
        "n_tracks": len(tracks),
        "pedalboard": package_version("pedalboard"),
    }


def render_dataset(
    settings: RenderSettings,
    out: str | Path,
    n: int,
    jobs: int = -1,
    batch_size: int = 4,
    command: str = "",
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
    backend: str = "loky",
    scheduler: str | None = None,
) -> RenderSummary:
    """Render items 0..n-1 into `out`, resuming whatever an earlier run finished.

    `shard=(k, m)` renders only the items i with i % m == k, with the same seeds as a single
    run, so m machines with no scheduler produce disjoint parts that `msaug merge` joins.
    `backend` / `scheduler` run the same batches on a dask or ray cluster (augment.backends).
    """
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"--shard K/N needs 0 <= K < N, got {shard[0]}/{shard[1]}")
    _check_settings(settings)
    config = load_config(settings.config_path)
    weights = parse_mode(settings.mode)
    sources = SourceRoot.open(settings.root, settings.source_form)  # type: ignore[arg-type]
    sources.check_sample_rate(settings.sample_rate)
    tracks = _eligible_tracks(sources, settings, config)
    started = time.perf_counter()
    out = Path(out)
    writer = DatasetWriter.open(
        out,
        identity(settings, config, tracks),
        meta={
            "command": command,
            "versions": {
                name: package_version(name)
                for name in ("msaug", "pedalboard", "numpy", "soundfile", "pyrubberband", "pandas")
            },
            "rubberband": "pedalboard built-in"
            if settings.stretch_backend == "pedalboard"
            else "rubberband-cli",
        },
    )
    done = writer.done_item_ids()
    mine = [i for i in range(n) if i % shard[1] == shard[0]]
    todo = [i for i in mine if item_id(i) not in done]
    summary = RenderSummary(out=out, skipped=len(mine) - len(todo))
    keys, digest = tuple((t.subset, t.name) for t in tracks), listing_digest(tracks)
    jobs_list = [
        _Job(settings, config, weights, keys, digest, str(out), tuple(todo[i : i + batch_size]))
        for i in range(0, len(todo), batch_size)
    ]
    bar = tqdm(total=len(todo), desc="rendering", unit="item", disable=not progress or not todo)
    with execution_backend(backend, scheduler):
        for result in _run_batches(jobs_list, jobs, streaming=backend != "ray"):
            writer.write_part(item_id(result["indices"][0]), result["items"], result["stems"])
            summary.rendered += len(result["items"])
            summary.rejected.update(result["rejected"])
            summary.failed.update(result["failed"])
            bar.update(len(result["indices"]))
    bar.close()
    summary.seconds = time.perf_counter() - started
    failed = {str(k): v for k, v in sorted(summary.failed.items())}
    items, stems = writer.finalize(
        failed_items=failed,
        last_run={
            "rendered": summary.rendered,
            "rejected_draws": dict(summary.rejected),
            "wall_seconds": round(summary.seconds, 2),
        },
    )
    summary.total_items = len(items)
    summary.hours = float(items["seconds"].sum()) / 3600 if len(items) else 0.0
    summary.bytes = int(items["bytes"].sum() + stems["bytes"].sum()) if len(items) else 0
    summary.attempts = int(items["attempts"].sum()) if len(items) else 0
    return summary
