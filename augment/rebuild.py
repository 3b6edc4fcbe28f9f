"""`msaug render --recipe`: rebuild a dataset from its recipe and the user's own sources.

Every item is replayed from its manifest rows (`plan.replay_item`), never redrawn, so a
recipe of a selection rebuilds exactly that selection. Before anything is written the sources
are compared file by file with the recipe's listing and the byte-determining builds with the
recipe's (`identity.libraries`): a difference is refused, naming the file and both checksums or
the build and both versions (`--allow-mismatch` rebuilds anyway and reports each item). As
parts land, every item's checksums are compared with the recipe's; the run ends with the
dataset's digest, which equals the recipe's when every byte does. The same batches, backends,
`--shard`, signals, resume and disk preflight as `msaug render` (`augment.writing`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from augment.batches import Job, ReplayJob
from augment.config import Suitability
from augment.identity import library_versions, provenance, source_listing
from augment.item import item_id
from augment.leftovers import Leftovers, Replayed
from augment.preflight import check_disk, size_text
from augment.recipe import Recipe, refuse_mismatch, source_differences
from augment.rerender import library_drift
from augment.source_index import source_files
from augment.sources import SourceRoot
from augment.validation import write_valid_part
from augment.writing import RenderSummary, check_run_options, finish, run_jobs
from manifests import Dataset, DatasetWriter, ItemRecord, StemRecord
from manifests.lock import WriterLock
from manifests.schema import DATASET_JSON, MIXTURE


@dataclass
class RebuildReport:
    summary: RenderSummary
    expected_digest: str
    digest: str
    mismatches: dict[str, str] = field(default_factory=dict)
    """Item id -> which files differ and why, for every item whose bytes are not the recipe's."""
    complete: bool = True
    """Every item of the recipe is in the dataset (not a shard, not interrupted)."""
    differences: list[str] = field(default_factory=list)
    """Source files and builds that differ from the recipe's (with `allow_mismatch`)."""

    @property
    def identical(self) -> bool:
        return self.complete and not self.mismatches and self.digest == self.expected_digest


def _rows(dataset: Dataset) -> list[tuple[ItemRecord, dict[str, StemRecord]]]:
    """A dataset's items with their stem rows, grouped once (not one scan per item)."""
    by_item: dict[str, dict[str, StemRecord]] = {}
    for row in dataset.stem_records():
        by_item.setdefault(row.item_id, {})[row.stem] = row
    items = [ItemRecord.from_dict(r) for r in dataset.items.to_dict("records")]
    return [(item, {s: by_item[item.item_id][s] for s in dataset.stem_names}) for item in items]


def _checksums(item: ItemRecord, stems: dict[str, StemRecord]) -> dict[str, str]:
    return {MIXTURE: item.checksum, **{s: r.checksum for s, r in stems.items()}}


class _Comparison:
    """Each landed item against the recipe's checksums, with the reason a difference has."""

    def __init__(
        self,
        recipe_rows: list[tuple[ItemRecord, dict[str, StemRecord]]],
        files_of: dict[tuple[str, str], set[str]],
        differing: set[str],
        drift: list[str],
    ):
        self.expected = {item.item_id: _checksums(item, stems) for item, stems in recipe_rows}
        self.reads = {
            item.item_id: {
                name
                for row in stems.values()
                for name in files_of.get((row.source_subset, row.source_track), ())
            }
            for item, stems in recipe_rows
        }
        self.differing, self.drift = differing, drift
        self.mismatches: dict[str, str] = {}

    def item(self, item: ItemRecord, stems: list[StemRecord]) -> str | None:
        got = _checksums(item, {r.stem: r for r in stems})
        files = [k for k, v in self.expected[item.item_id].items() if got.get(k) != v]
        if not files:
            return None
        sources = sorted(self.reads[item.item_id] & self.differing)
        if sources:
            why = f"it reads source files that differ: {', '.join(sources)}"
        elif self.drift:
            why = f"rendered with other builds: {'; '.join(self.drift)}"
        else:
            why = "a render difference (same sources and builds): please report it"
        self.mismatches[item.item_id] = f"{', '.join(files)} differ; {why}"
        return f"item {item.item_id}: {self.mismatches[item.item_id]}"

    def batch(self, result: dict[str, Any], bar: tqdm) -> None:
        stems_of: dict[str, list[StemRecord]] = {}
        for row in result["stems"]:
            stems_of.setdefault(row.item_id, []).append(row)
        for item in result["items"]:
            line = self.item(item, stems_of[item.item_id])
            if line:
                bar.write(line)


def rebuild_dataset(
    recipe_root: str | Path,
    root: str | Path,
    out: str | Path,
    jobs: int = -1,
    batch_size: int = 4,
    command: str = "",
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
    backend: str = "loky",
    scheduler: str | None = None,
    force: bool = False,
    allow_mismatch: bool = False,
) -> RebuildReport:
    """Rebuild the recipe's items from the sources at `root` into `out`, resumably."""
    check_run_options(jobs, batch_size, shard)
    recipe = Recipe.open(recipe_root)
    settings = recipe.settings(root)
    sources = SourceRoot.open(settings.root, settings.source_form)  # type: ignore[arg-type]
    keys = sorted(recipe.identity["sources"]["frames"])
    tracks = [sources.track(*key.split("/", 1)) for key in keys]
    started = time.perf_counter()
    listing = source_listing(tracks, sources.root, progress)
    differing = source_differences(recipe, listing["files"])
    builds = library_versions(settings, sources.form)
    drift = list(library_drift(recipe.identity.get("libraries", {}), builds))
    if (differing or drift) and not allow_mismatch:
        refuse_mismatch([*differing.values(), *drift], root)
    identity = {**recipe.identity, "sources": listing, "libraries": builds}
    all_rows = _rows(recipe.dataset)
    train = [(i, s) for i, s in all_rows if i.role == "train"]
    mine = train[shard[0] :: shard[1]]
    out = Path(out)
    fresh = not (out / DATASET_JSON).exists()
    if fresh:
        check_disk(out, len(mine), settings, force)
    lock = WriterLock.acquire(out, command)
    try:
        made = provenance(settings, command)
        made["recipe"] = {"digest": recipe.digest, "created": recipe.info.get("created")}
        writer = DatasetWriter.open(
            out,
            identity,
            made,
            stems=recipe.dataset.stem_names,
            effect_columns=recipe.dataset.header["effect_columns"],
            lock=lock,
        )
        scheme = int(recipe.identity.get("draw_scheme", 1))
        rows = {item.item_id: (item, stems) for item, stems in train}
        leftovers = Leftovers(settings, Replayed(rows, scheme))
        done = writer.done_item_ids()
        settled = leftovers.settle(writer, done)  # left by a run stopped mid-batch
        done.update(settled.folded)
        todo = [(i, s) for i, s in mine if i.item_id not in done]
        summary = RenderSummary(out=out, skipped=len(mine) - len(todo), requested=len(mine))
        summary.folded, summary.removed = len(settled.folded), settled.removed
        files_of = {(t.subset, t.name): set(source_files(t)) for t in tracks}
        compare = _Comparison(all_rows, files_of, set(differing), drift)
        suitability = Suitability(**recipe.identity["config"]["suitability"])
        if shard[0] == 0:
            for item, stems in write_valid_part(writer, sources, settings, suitability, done):
                compare.item(item, stems)
        need = check_disk(out, len(todo), settings, force or fresh)
        if progress and todo:
            tqdm.write(
                f"rebuilding {len(todo)} items ({summary.skipped} already done), about "
                f"{size_text(need)}, into {out}"
            )
        jobs_list: list[Job] = [
            ReplayJob(
                settings,
                listing["digest"],
                str(out),
                writer.lock_token,
                os.getpid() if backend == "loky" else None,
                writer.fingerprint,
                suitability,
                scheme,
                tuple(todo[i : i + batch_size]),
            )
            for i in range(0, len(todo), batch_size)
        ]
        run_jobs(
            jobs_list,
            writer,
            summary,
            leftovers,
            jobs,
            backend,
            scheduler,
            progress,
            compare.batch,
        )
        finish(writer, summary, started)
    finally:
        lock.release()
    rebuilt = Dataset.open(out)
    for item, stems in _rows(rebuilt):  # items of earlier, interrupted runs are checked too
        if item.item_id not in compare.mismatches:
            compare.item(item, list(stems.values()))
    for index, reasons in summary.failed.items():
        compare.mismatches[item_id(index)] = f"not rebuilt: {next(iter(reasons))}"
    complete = len(rebuilt) == len(recipe.dataset)
    return RebuildReport(
        summary,
        recipe.digest,
        rebuilt.header["digest"],
        compare.mismatches,
        complete,
        [*differing.values(), *drift],
    )
