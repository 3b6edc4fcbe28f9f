"""The worker side of a render: one batch of items, drawn, rendered and written.

Items go to joblib workers in batches; each worker opens the sources once (cached per
process), plans its items (drawn from their seeds, or replayed from a recipe's rows), renders
them (`augment.item`), writes their audio atomically and returns the manifest rows. The
parent alone writes manifest parts (`augment.writing`), so rows never interleave. Each finished
item also gets its rows as a sidecar in its folder (`manifests.sidecar`), so an item whose batch
never reaches the parent is folded in later instead of rendered again (`augment.leftovers`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from augment.config import RenderConfig, Suitability
from augment.errors import SourceError
from augment.interrupts import watch_parent
from augment.item import item_id, render_item
from augment.plan import DrawFailure, ItemPlan, draw_item, replay_item
from augment.settings import RenderSettings
from augment.sources import SourceRoot
from manifests.lock import worker_hold
from manifests.records import ItemRecord, StemRecord
from manifests.sidecar import write_rows


@dataclass(frozen=True)
class Job:
    """What every batch carries: plain data only (pedalboard objects do not pickle)."""

    settings: RenderSettings
    listing_digest: str
    out: str
    lock_token: str
    parent_pid: int | None
    fingerprint: str
    """The writer's `fingerprint`, written into each item's sidecar."""

    @property
    def part(self) -> str:
        """The name of the manifest part this batch's rows go to."""
        raise NotImplementedError

    @property
    def size(self) -> int:
        """Items in the batch (rendered, or failed to draw)."""
        raise NotImplementedError

    def plans(
        self, sources: SourceRoot, failed: dict[int, dict[str, int]], rejected: Counter
    ) -> Iterator[tuple[ItemPlan, dict[str, np.ndarray]]]:
        """Each item's plan and source audio; an item that cannot be planned goes to `failed`."""
        raise NotImplementedError

    def render(self, sources: SourceRoot) -> dict[str, Any]:
        """Render every planned item. Each kind of job has a `suitability` (a property of a
        DrawJob's config, a field of a ReplayJob: a property here would shadow the field)."""
        items, stems, failed, rejected = [], [], {}, Counter()
        out = Path(self.out)
        for plan, audio in self.plans(sources, failed, rejected):
            item, item_stems = render_item(
                plan,
                audio,
                self.settings,
                self.suitability,  # type: ignore[attr-defined]
                out,
            )
            write_rows(out, self.fingerprint, item, item_stems)  # last: the item is whole
            items.append(item)
            stems.extend(item_stems)
        return {"items": items, "stems": stems, "failed": failed, "rejected": rejected}


@dataclass(frozen=True)
class DrawJob(Job):
    """Items drawn from their indices' seeds (`msaug render`)."""

    config: RenderConfig
    weights: dict[str, float]
    track_keys: tuple[tuple[str, str], ...]
    indices: tuple[int, ...]

    @property
    def part(self) -> str:
        return item_id(self.indices[0])

    @property
    def size(self) -> int:
        return len(self.indices)

    @property
    def suitability(self) -> Suitability:
        return self.config.suitability

    def plans(self, sources, failed, rejected):
        tracks = [sources.track(subset, name) for subset, name in self.track_keys]
        for index in self.indices:
            try:
                yield draw_item(
                    index,
                    self.settings.seed,
                    self.weights,
                    self.config,
                    tracks,
                    self.settings.frames,
                    self.settings.sample_rate,
                    rejected,
                )
            except DrawFailure as failure:
                failed[index] = dict(failure.reasons)


@dataclass(frozen=True)
class ReplayJob(Job):
    """Items rendered again from their manifest rows (`msaug render --recipe`)."""

    suitability: Suitability
    draw_scheme: int
    rows: tuple[tuple[ItemRecord, dict[str, StemRecord]], ...]

    @property
    def part(self) -> str:
        return self.rows[0][0].item_id

    @property
    def size(self) -> int:
        return len(self.rows)

    def plans(self, sources, failed, rejected):
        for item_row, stem_rows in self.rows:
            try:
                yield replay_item(
                    item_row, stem_rows, sources, self.draw_scheme, self.settings.sample_rate
                )
            except SourceError as exc:  # sources other than the recipe's (--allow-mismatch)
                failed[item_row.item_index] = {str(exc): 1}


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
        settings = job.settings
        sources = _open_sources(settings.root, settings.source_form, job.listing_digest)
        return {"part": job.part, "count": job.size, **job.render(sources)}


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
