"""`msaug render`: draw, render and write augmented items in parallel, resumably.

Items go to joblib workers in batches; each worker opens the sources once (cached per
process), plans and renders its items (`augment.item`), writes their audio atomically and
returns the manifest rows. The parent alone writes manifest parts, so rows never interleave.
Running the same command again on the same `--out` skips finished items and gives
byte-identical results; a larger `--n` extends the dataset.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from joblib import Parallel, delayed
from tqdm import tqdm

from augment.backends import execution_backend
from augment.config import RenderConfig, load_config, parse_mode
from augment.effects import effect_columns
from augment.errors import ConfigError, SourceError
from augment.identity import identity, provenance, source_listing
from augment.interrupts import Interrupted, stop_on_signals, watch_parent
from augment.item import item_id, remove_unlisted_items, render_item
from augment.plan import DrawFailure, draw_item
from augment.preflight import check_disk, disk_full, size_text
from augment.settings import RenderSettings, check_settings
from augment.sources import SourceRoot, Track
from augment.stretch import frames_to_read
from manifests import DatasetWriter
from manifests.lock import WriterLock, worker_hold
from manifests.schema import DATASET_JSON, STEM_NAMES

__all__ = ["RenderSettings", "RenderSummary", "item_id", "render_dataset"]


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
    requested: int = 0
    """Items this run (or shard) was asked for; `total_items` may be fewer if interrupted."""
    interrupted: str | None = None
    """The signal that stopped the run (SIGINT, SIGTERM), or None if it ran to the end."""
    removed: int = 0
    """Item folders of unfinished batches that were removed (they are rendered again)."""


@dataclass(frozen=True)
class _Job:
    """What a worker needs for a batch: plain data only (pedalboard objects do not pickle)."""

    settings: RenderSettings
    config: RenderConfig
    weights: dict[str, float]
    track_keys: tuple[tuple[str, str], ...]
    listing_digest: str
    out: str
    lock_token: str
    parent_pid: int | None
    indices: tuple[int, ...]


@cache
def _open_sources(root: str, form: str, listing_digest: str) -> SourceRoot:
    """One SourceRoot per worker process, reused by every batch it runs.

    The digest of the parent's track listing is part of the key, so a worker that outlives
    one render (loky reuses workers) never serves a stale listing to the next.
    """
    return SourceRoot.open(root, form)  # type: ignore[arg-type]


def _render_batch(job: _Job) -> dict[str, Any]:
    """Render one batch while holding `out`'s lock shared: a worker orphaned by a killed run
    finishes its batch, then finds the folder taken and stops (`manifests.lock`)."""
    watch_parent(job.parent_pid)
    with worker_hold(job.out, job.lock_token):
        return _render_indices(job)


def _render_indices(job: _Job) -> dict[str, Any]:
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
    longest = frames_to_read(settings.frames, config.max_rate(), settings.sample_rate)
    long_enough = [t for t in tracks if t.num_frames >= longest]
    if not long_enough:
        raise SourceError(
            f"no track in {sources.root}/{settings.subset} is long enough: a "
            f"{settings.seconds} s segment at a duration factor down to "
            f"{1 / config.max_rate():.3g} needs "
            f"{longest / settings.sample_rate:.1f} s and the longest track has "
            f"{max(t.seconds for t in tracks):.1f} s; use shorter --seconds"
        )
    return long_enough


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
    force: bool = False,
) -> RenderSummary:
    """Render items 0..n-1 into `out`, resuming whatever an earlier run finished.

    `shard=(k, m)` renders only the items i with i % m == k, with the same seeds as a single
    run, so m machines with no scheduler produce disjoint parts that `msaug merge` joins.
    `backend` / `scheduler` run the same batches on a dask or ray cluster (augment.backends).
    The disk under `out` must have room for the items to render (`augment.preflight`)
    unless `force`.
    """
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if jobs == 0:
        raise ConfigError("--jobs must be a number of workers, or -1 for all cores; got 0")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1 item, got {batch_size}")
    if not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"--shard K/N needs 0 <= K < N, got {shard[0]}/{shard[1]}")
    check_settings(settings)
    config = load_config(settings.config_path)
    weights = parse_mode(settings.mode)
    sources = SourceRoot.open(settings.root, settings.source_form)  # type: ignore[arg-type]
    sources.check_sample_rate(settings.sample_rate)
    tracks = _eligible_tracks(sources, settings, config)
    started = time.perf_counter()
    out = Path(out)
    mine = [i for i in range(n) if i % shard[1] == shard[0]]
    fresh = not (out / DATASET_JSON).exists()
    if fresh:  # refused before anything is written
        check_disk(out, len(mine), settings, force)
    lock = WriterLock.acquire(out, command)  # before hashing sources: a rival is refused at once
    try:
        listing = source_listing(tracks, sources.root, progress)
        writer = DatasetWriter.open(
            out,
            identity(settings, config, listing, sources.form),
            provenance(settings, command),
            stems=STEM_NAMES,
            effect_columns=effect_columns(),
            lock=lock,
        )
        done = writer.done_item_ids()
        todo = [i for i in mine if item_id(i) not in done]
        summary = RenderSummary(out=out, skipped=len(mine) - len(todo), requested=len(mine))
        summary.removed = remove_unlisted_items(out, done)  # left by a run killed mid-batch
        need = check_disk(out, len(todo), settings, force or fresh)
        if progress and todo:
            tqdm.write(
                f"rendering {len(todo)} items ({summary.skipped} already done), about "
                f"{size_text(need)}, into {out}"
            )
        keys, digest = tuple((t.subset, t.name) for t in tracks), listing["digest"]
        jobs_list = [
            _Job(
                settings,
                config,
                weights,
                keys,
                digest,
                str(out),
                writer.lock_token,
                os.getpid() if backend == "loky" else None,
                tuple(todo[i : i + batch_size]),
            )
            for i in range(0, len(todo), batch_size)
        ]
        bar = tqdm(total=len(todo), desc="rendering", unit="item", disable=not progress or not todo)
        with execution_backend(backend, scheduler), stop_on_signals() as stop:
            results = _run_batches(jobs_list, jobs, streaming=backend != "ray")
            try:
                while True:
                    with stop.waiting_for_results():
                        result = next(results, None)
                    if result is None:
                        break
                    key = item_id(result["indices"][0])
                    writer.write_part(key, result["items"], result["stems"])
                    summary.rendered += len(result["items"])
                    summary.rejected.update(result["rejected"])
                    summary.failed.update(result["failed"])
                    bar.update(len(result["indices"]))
                    stop.check()
            except Exception as exc:
                if not disk_full(out, settings):
                    raise
                raise ConfigError(
                    f"the disk under {out} is full after {summary.rendered} items of this run "
                    "(every finished batch is kept); free space and rerun the same command to "
                    "resume"
                ) from exc
            except Interrupted as exc:
                summary.interrupted = exc.name
                results.close()  # joblib kills the workers of unfinished batches
                writer.remove_temp_files()
                summary.removed += remove_unlisted_items(out, writer.done_item_ids())
            finally:
                results.close()
        bar.close()
        summary.seconds = time.perf_counter() - started
        failed = {str(k): v for k, v in sorted(summary.failed.items())}
        items, stems = writer.finalize(
            failed_items=failed,
            last_run={
                "requested": summary.requested,
                "interrupted": summary.interrupted,
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
    finally:
        lock.release()
