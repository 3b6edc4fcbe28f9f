"""The worker side of a render: one batch of items, drawn, rendered and written.

Items go to joblib workers in batches; each worker opens the sources once (cached per
process), plans and renders its items (`augment.item`), writes their audio atomically and
returns the manifest rows. The parent alone writes manifest parts, so rows never interleave.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from joblib import Parallel, delayed

from augment.config import RenderConfig
from augment.interrupts import watch_parent
from augment.item import render_item
from augment.plan import DrawFailure, draw_item
from augment.settings import RenderSettings
from augment.sources import SourceRoot
from manifests.lock import worker_hold


@dataclass(frozen=True)
class Job:
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


def render_batch(job: Job) -> dict[str, Any]:
    """Render one batch while holding `out`'s lock shared: a worker orphaned by a killed run
    finishes its batch, then finds the folder taken and stops (`manifests.lock`)."""
    watch_parent(job.parent_pid)
    with worker_hold(job.out, job.lock_token):
        return _render_indices(job)


def _render_indices(job: Job) -> dict[str, Any]:
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


_WAVE = 32


def run_batches(jobs_list: list[Job], n_jobs: int, streaming: bool) -> Iterator[dict[str, Any]]:
    """Batch results as they finish. Backends that cannot stream results (ray's) run in waves
    of `_WAVE` batches, so manifest parts still land, and progress still moves, as work ends."""
    if streaming:
        yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(render_batch)(job) for job in jobs_list
        )
        return
    for start in range(0, len(jobs_list), _WAVE):
        wave = jobs_list[start : start + _WAVE]
        yield from Parallel(n_jobs=n_jobs)(delayed(render_batch)(job) for job in wave)
