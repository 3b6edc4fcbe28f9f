"""`msaug render`: draw, render and write augmented items in parallel, resumably.

Items go to joblib workers in batches (`augment.batches`); the parent alone writes manifest
parts, so rows never interleave. Running the same command again on the same `--out` skips
finished items and gives byte-identical results; a larger `--n` extends the dataset.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joblib import effective_n_jobs
from tqdm import tqdm

from augment.backends import execution_backend
from augment.batches import Job, run_batches
from augment.config import RenderConfig, load_config, parse_mode
from augment.effects import effect_columns
from augment.errors import ConfigError, SourceError
from augment.identity import identity, provenance, source_listing
from augment.interrupts import Interrupted, StopFlag, stop_on_signals
from augment.item import item_id, remove_unlisted_items
from augment.preflight import check_disk, disk_full, size_text
from augment.settings import RenderSettings, check_settings
from augment.sources import SourceRoot, Track
from augment.stretch import frames_to_read
from augment.validation import choose_valid_tracks, write_valid_song
from manifests import DatasetWriter
from manifests.lock import WriterLock
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
    valid_songs: int = 0
    """Validation songs in the dataset (rows with role `valid`), counted in `total_items`."""
    interrupted: str | None = None
    """The signal that stopped the run (SIGINT, SIGTERM), or None if it ran to the end."""
    removed: int = 0
    """Item folders of unfinished batches that were removed (they are rendered again)."""


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


def _write_valid_songs(
    writer: DatasetWriter,
    sources: SourceRoot,
    settings: RenderSettings,
    config: RenderConfig,
    done: set[str],
) -> None:
    """The validation songs not yet in the manifest, as one part (they are quick: links)."""
    todo = [name for name in settings.valid_tracks if name not in done]
    if not todo:
        return
    rows = [
        write_valid_song(
            sources.track(settings.subset, name), writer.root, settings, config.suitability
        )
        for name in todo
    ]
    writer.write_part("valid", [item for item, _ in rows], [s for _, stems in rows for s in stems])


def _estimate(bar: tqdm, items: int, seconds: float, workers: int) -> None:
    """After the first batch: the time the rest will take if every worker keeps this pace."""
    rest = (bar.total - items) * seconds / items / max(workers, 1)
    hours, minutes = divmod(round(rest / 60), 60)
    left = f"{rest:.0f} s" if rest < 90 else f"{hours} h {minutes} min"
    bar.write(
        f"first batch: {seconds / items:.1f} s per item; about {left} for the remaining "
        f"{bar.total - items} items on {workers} workers"
    )


def _write_results(
    results: Iterator[dict[str, Any]],
    writer: DatasetWriter,
    summary: RenderSummary,
    stop: StopFlag,
    bar: tqdm,
    workers: int,
) -> None:
    """Write each batch's manifest part as it arrives. A signal ends this cleanly (recorded in
    `summary.interrupted`); closing `results` makes joblib kill the unfinished batches."""
    started = time.monotonic()
    try:
        while True:
            with stop.waiting_for_results():
                result = next(results, None)
            if result is None:
                return
            writer.write_part(item_id(result["indices"][0]), result["items"], result["stems"])
            summary.rendered += len(result["items"])
            summary.rejected.update(result["rejected"])
            summary.failed.update(result["failed"])
            if bar.n == 0 and not bar.disable:
                _estimate(bar, len(result["indices"]), time.monotonic() - started, workers)
            bar.update(len(result["indices"]))
            stop.check()
    except Interrupted as exc:
        summary.interrupted = exc.name
    except Exception as exc:
        if stop.signum is not None:  # a worker hit by the same signal failed its batch first
            summary.interrupted = signal.Signals(stop.signum).name
        elif disk_full(writer.root, exc):
            raise ConfigError(
                f"the disk under {writer.root} is full after {summary.rendered} items of this "
                "run (every finished batch is kept); free space and rerun the same command to "
                "resume"
            ) from exc
        else:
            raise
    finally:
        results.close()


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
    valid_tracks: tuple[str, ...] = (),
    valid_count: int | None = None,
) -> RenderSummary:
    """Render items 0..n-1 into `out`, resuming whatever an earlier run finished.

    `shard=(k, m)` renders only the items i with i % m == k, with the same seeds as a single
    run, so m machines with no scheduler produce disjoint parts that `msaug merge` joins.
    `backend` / `scheduler` run the same batches on a dask or ray cluster (augment.backends).
    The disk under `out` must have room for the items to render (`augment.preflight`)
    unless `force`. The validation songs (`augment.validation`: musdb's split, or
    `valid_tracks`, or `valid_count` drawn by seed) are written by shard 0, unaugmented.
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
    chosen = choose_valid_tracks(sources, settings, tuple(valid_tracks), valid_count)
    settings = dataclasses.replace(settings, valid_tracks=chosen)
    tracks = [t for t in _eligible_tracks(sources, settings, config) if t.name not in chosen]
    if not tracks:
        raise ConfigError(f"every song of {settings.subset} is a validation song; keep some")
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
        if shard[0] == 0:
            _write_valid_songs(writer, sources, settings, config, done)
        need = check_disk(out, len(todo), settings, force or fresh)
        if progress and todo:
            tqdm.write(
                f"rendering {len(todo)} items ({summary.skipped} already done), about "
                f"{size_text(need)}, into {out}"
            )
        keys, digest = tuple((t.subset, t.name) for t in tracks), listing["digest"]
        jobs_list = [
            Job(
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
            results = run_batches(jobs_list, jobs, streaming=backend != "ray")
            _write_results(results, writer, summary, stop, bar, effective_n_jobs(jobs))
        if summary.interrupted:  # after the backend is down: no worker writes any more
            writer.remove_temp_files()
            summary.removed += remove_unlisted_items(out, writer.done_item_ids())
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
        summary.valid_songs = int((items["role"] == "valid").sum()) if len(items) else 0
        summary.hours = float(items["seconds"].sum()) / 3600 if len(items) else 0.0
        summary.bytes = int(items["bytes"].sum() + stems["bytes"].sum()) if len(items) else 0
        summary.attempts = int(items["attempts"].sum()) if len(items) else 0
        return summary
    finally:
        lock.release()
