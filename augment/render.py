"""`msaug render`: draw, render and write augmented items in parallel, resumably.

Items go to joblib workers in batches (`augment.batches`); the parent alone writes manifest
parts, so rows never interleave. Running the same command again on the same `--out` skips
finished items and gives byte-identical results; a larger `--n` extends the dataset.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from tqdm import tqdm

from augment.batches import DrawJob, Job
from augment.config import RenderConfig, load_config, parse_mode
from augment.effects import effect_columns
from augment.errors import ConfigError, SourceError
from augment.identity import identity, provenance, source_listing
from augment.item import item_id
from augment.leftovers import Drawn, Leftovers
from augment.preflight import check_disk, size_text
from augment.settings import RenderSettings, check_settings
from augment.sources import SourceRoot, Track
from augment.stretch import frames_to_read
from augment.validation import choose_valid_tracks, write_valid_part
from augment.writing import RenderSummary, check_run_options, finish, run_jobs
from manifests import DatasetWriter
from manifests.lock import WriterLock
from manifests.schema import DATASET_JSON, STEM_NAMES

__all__ = ["RenderSettings", "RenderSummary", "item_id", "render_dataset"]


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
    """Render items 0..n-1 into `out`, resuming whatever an earlier run finished (finished
    items no part lists are folded in, also beyond a smaller `n`: `augment.leftovers`).

    `shard=(k, m)` renders only the items i with i % m == k, with the same seeds as a single
    run, so m machines with no scheduler produce disjoint parts that `msaug merge` joins.
    `backend` / `scheduler` run the same batches on a dask or ray cluster (augment.backends).
    The disk under `out` must have room for the items to render (`augment.preflight`)
    unless `force`. The validation songs (`augment.validation`: musdb's split, or
    `valid_tracks`, or `valid_count` drawn by seed) are written by shard 0, unaugmented.
    """
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    check_run_options(jobs, batch_size, shard)
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
        channels = {(t.subset, t.name): t.channels for t in tracks}
        leftovers = Leftovers(settings, Drawn(config, weights, channels))
        done = writer.done_item_ids()
        settled = leftovers.settle(writer, done)  # left by a run stopped mid-batch
        done.update(settled.folded)
        todo = [i for i in mine if item_id(i) not in done]
        summary = RenderSummary(out=out, skipped=len(mine) - len(todo), requested=len(mine))
        summary.folded, summary.removed = len(settled.folded), settled.removed
        if shard[0] == 0:
            write_valid_part(writer, sources, settings, config.suitability, done)
        need = check_disk(out, len(todo), settings, force or fresh)
        if progress and todo:
            tqdm.write(
                f"rendering {len(todo)} items ({summary.skipped} already done), about "
                f"{size_text(need)}, into {out}"
            )
        keys, digest = tuple((t.subset, t.name) for t in tracks), listing["digest"]
        jobs_list: list[Job] = [
            DrawJob(
                settings,
                digest,
                str(out),
                writer.lock_token,
                os.getpid() if backend == "loky" else None,
                writer.fingerprint,
                config,
                weights,
                keys,
                tuple(todo[i : i + batch_size]),
            )
            for i in range(0, len(todo), batch_size)
        ]
        run_jobs(jobs_list, writer, summary, leftovers, jobs, backend, scheduler, progress)
        finish(writer, summary, started)
        return summary
    finally:
        lock.release()
