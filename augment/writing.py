"""The parent side of a render: batches run, their rows written as parts, then one fold.

`msaug render` (items drawn from seeds) and `msaug render --recipe` (items replayed from a
recipe's rows) differ only in their batches (`augment.batches`); both write through this
module, so both stop cleanly on SIGINT / SIGTERM, report a full disk in one line, estimate the
time after the first batch and leave a valid dataset of whatever finished.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joblib import effective_n_jobs
from tqdm import tqdm

from augment.backends import execution_backend
from augment.batches import Job, run_batches
from augment.errors import ConfigError
from augment.interrupts import Interrupted, StopFlag, stop_on_signals
from augment.leftovers import Leftovers
from augment.preflight import disk_full
from manifests import DatasetWriter
from manifests.schema import item_dir
from manifests.sidecar import drop_rows


@dataclass
class RenderSummary:
    out: Path
    rendered: int = 0
    """Items rendered by this run and now in the manifest (also those whose batch never
    reached the parent, folded in after a signal)."""
    skipped: int = 0
    """Items of this run already done when it started (listed, or folded in then)."""
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
    folded: int = 0
    """Finished item folders of an earlier run that no part listed, proven by their sidecars
    and folded in when this run started (`augment.leftovers`), beyond a smaller --n too."""

    present: int = 0
    """Rendered items in the dataset (validation songs left out); may exceed `requested`
    when an earlier run with a larger --n left finished items. Counted once, in `finish`, from
    the tables it writes; dataset.json's `last_run.present` is this number."""


def check_run_options(jobs: int, batch_size: int, shard: tuple[int, int]) -> None:
    if jobs == 0:
        raise ConfigError("--jobs must be a number of workers, or -1 for all cores; got 0")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1 item, got {batch_size}")
    if not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"--shard K/N needs 0 <= K < N, got {shard[0]}/{shard[1]}")


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
    check: Callable[[dict[str, Any], tqdm], None] | None,
) -> None:
    """Write each batch's manifest part as it arrives, then `check` it. A signal ends this
    cleanly (recorded in `summary.interrupted`); closing `results` makes joblib kill the
    unfinished batches."""
    started = time.monotonic()
    try:
        while True:
            with stop.waiting_for_results():
                result = next(results, None)
            if result is None:
                return
            writer.write_part(result["part"], result["items"], result["stems"])
            for item in result["items"]:  # the rows are in a part: the sidecars are done
                drop_rows(writer.root / item_dir(item.subset, item.item_id))
            summary.rendered += len(result["items"])
            summary.rejected.update(result["rejected"])
            summary.failed.update(result["failed"])
            if check is not None:
                check(result, bar)
            if bar.n == 0 and not bar.disable:
                _estimate(bar, result["count"], time.monotonic() - started, workers)
            bar.update(result["count"])
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


def run_jobs(
    jobs_list: list[Job],
    writer: DatasetWriter,
    summary: RenderSummary,
    leftovers: Leftovers,
    jobs: int,
    backend: str,
    scheduler: str | None,
    progress: bool,
    check: Callable[[dict[str, Any], tqdm], None] | None = None,
) -> None:
    """Run the batches on `backend` and write their parts (`check` sees each batch's rows as
    it lands). After a signal the backend is down (joblib has killed the workers of
    unfinished batches) before the item folders no part lists are settled: the finished items
    of those batches are folded in, the unfinished ones removed."""
    total = sum(job.size for job in jobs_list)
    bar = tqdm(total=total, desc="rendering", unit="item", disable=not progress or not total)
    with execution_backend(backend, scheduler), stop_on_signals() as stop:
        results = run_batches(jobs_list, jobs, streaming=backend != "ray")
        _write_results(results, writer, summary, stop, bar, effective_n_jobs(jobs), check)
    if summary.interrupted:
        writer.remove_temp_files()
        settled = leftovers.settle(writer, writer.done_item_ids())
        summary.rendered += len(settled.folded)
        summary.removed += settled.removed
    bar.close()


def finish(writer: DatasetWriter, summary: RenderSummary, started: float) -> None:
    """Fold the parts into the tables and fill in the summary's totals."""
    summary.seconds = time.perf_counter() - started
    failed = {str(k): v for k, v in sorted(summary.failed.items())}
    items, stems = writer.folded_tables()
    summary.total_items = len(items)
    summary.valid_songs = int((items["role"] == "valid").sum()) if len(items) else 0
    summary.present = summary.total_items - summary.valid_songs
    writer.finalize(
        (items, stems),
        failed_items=failed,
        last_run={
            "requested": summary.requested,
            "present": summary.present,
            "folded": summary.folded,
            "interrupted": summary.interrupted,
            "rendered": summary.rendered,
            "rejected_draws": dict(summary.rejected),
            "wall_seconds": round(summary.seconds, 2),
        },
    )
    summary.hours = float(items["seconds"].sum()) / 3600 if len(items) else 0.0
    summary.bytes = int(items["bytes"].sum() + stems["bytes"].sum()) if len(items) else 0
    summary.attempts = int(items["attempts"].sum()) if len(items) else 0
