"""Per-item cost of `msaug render` against the source's chain, its own bare DSP and the I/O floor.

One run measures, on the same items (same segments, same drawn effects):

  (a) the source project's chain (benchmarks/source_reimpl.py: mono, librosa, np.convolve);
  (b) `render_dataset` with the default settings (10 s, 44.1 kHz, stereo, p = 0.6), quality
      best and fast, on 1 and on 2 workers;
  (c) only `apply_chain` on audio already read: the effects with nothing around them;
  (d) the I/O floor: read the same segments, write the same five files, no effects.

and prints seconds per item and the ratios (a)/(b) (target >= 5), (b)/(c) (target <= 1.2) and
the 2-worker speed-up (target >= 1.8). (a) costs several seconds per item (its reverb is a direct
np.convolve), so it can run on the first --source-items only, and (c) is timed on those too. CPU
seconds (this process and its worker processes) stand beside wall seconds: on a shared machine,
wall well above CPU (or above CPU / 2 with 2 workers) means the run was disturbed.

(a) runs with one BLAS thread, as (b) with 1 worker does (loky workers get one thread). Its
`np.convolve` reverb calls OpenBLAS once per output sample. With two BLAS threads it used 2.8x
the CPU for the same work in one loaded run, and while another process holds a core each call
waits for the scheduler (over 10 min for 2 items in one case).

    python benchmarks/render.py                     # 4 demo songs of 30 s made in a temp folder
    python benchmarks/render.py --root ~/musdb18hq --items 16
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import librosa
import numpy as np
import pedalboard
from source_reimpl import SourceDraw
from source_reimpl import render_item as source_render_item
from threadpoolctl import threadpool_limits

from augment.chain import apply_chain
from augment.config import load_config, parse_mode
from augment.plan import DrawFailure, ItemPlan, draw_item
from augment.render import RenderSettings, _eligible_tracks, item_id, render_dataset
from augment.sources import SourceRoot, read_segment
from manifests import Dataset
from manifests.files import quantize, write_audio
from manifests.schema import MIXTURE, audio_path


@dataclass
class Timing:
    label: str
    items: int
    wall: float
    cpu: float
    item_walls: list[float] = field(default_factory=list)  # per item, where measured

    @property
    def wall_per_item(self) -> float:
        return self.wall / self.items


def _children_cpu() -> float:
    """CPU seconds used so far by this process's live children (the loky workers, which are
    not reaped between runs, so RUSAGE_CHILDREN misses them). Linux /proc only."""
    me, total = os.getpid(), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == me:
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def _timed(label: str, items: int, work: Callable[[], object]) -> Timing:
    """Wall and CPU seconds of `work`, the CPU of this process and of its worker processes."""
    wall, cpu = time.perf_counter(), time.process_time() + _children_cpu()
    work()
    cpu = time.process_time() + _children_cpu() - cpu
    return Timing(label, items, time.perf_counter() - wall, cpu)


def _plan(settings: RenderSettings, n: int) -> list[tuple[ItemPlan, dict[str, np.ndarray]]]:
    """The items `render_dataset` will render, with the source audio their draws read."""
    config = load_config(settings.config_path)
    sources = SourceRoot.open(settings.root)
    tracks = _eligible_tracks(sources, settings, config)
    weights = parse_mode(settings.mode)
    planned = []
    for index in range(n):
        try:
            planned.append(
                draw_item(
                    index,
                    settings.seed,
                    weights,
                    config,
                    tracks,
                    settings.frames,
                    settings.sample_rate,
                    Counter(),
                )
            )
        except DrawFailure:
            continue  # render skips it too
    return planned


def _check_same_items(out: Path, planned: list[tuple[ItemPlan, dict[str, np.ndarray]]]) -> None:
    """(b) must have rendered exactly the planned segments, or the comparison is void."""
    stems = Dataset.open(out).stems.set_index(["item_id", "stem"])
    for plan, _ in planned:
        for stem in plan.stems:
            row = stems.loc[(item_id(plan.index), stem.stem)]
            start = round(row.offset_seconds * stem.track.sample_rate)
            if (row.source_track, start) != (stem.track.name, stem.start):
                raise RuntimeError(f"{out} drew another segment for item {plan.index}")


def _write_plain(plan: ItemPlan, frames: int, sr: int, out: Path) -> None:
    """The I/O floor: read the planned segments, write the five files as render does."""
    stems = {  # a slowed-down stem reads less than `frames`: start early enough to fit
        s.stem: quantize(
            read_segment(s.track, s.stem, min(s.start, s.track.num_frames - frames), frames),
            "PCM_16",
        )
        for s in plan.stems
    }
    iid = item_id(plan.index)
    for name, audio in {**stems, MIXTURE: quantize(sum(stems.values()), "PCM_16")}.items():
        write_audio(out / audio_path("train", iid, name, "wav"), audio, sr, "PCM_16")


def _warm_up(settings: RenderSettings, scratch: Path) -> None:
    """First calls load or compile code (librosa ~6 s) and start the loky workers (reused by
    later calls): keep that out of the timings, which describe a long render's steady state."""
    x = np.random.default_rng(0).standard_normal(settings.sample_rate).astype(np.float32)
    sr = settings.sample_rate
    librosa.effects.time_stretch(librosa.effects.pitch_shift(x, sr=sr, n_steps=1), rate=1.1)
    short = dataclasses.replace(settings, seconds=1.0)
    for quality in ("best", "fast"):
        pedalboard.time_stretch(x[None], float(sr), 1.1, 1.0, high_quality=quality == "best")
        warm = dataclasses.replace(short, quality=quality)
        for jobs in (1, 2):
            out = scratch / f"warm-{quality}-{jobs}"
            render_dataset(warm, out, n=2 * jobs, jobs=jobs, batch_size=1, progress=False)


def run(root: Path, n: int, source_items: int, batch_size: int, work: Path) -> dict[str, Timing]:
    """All variants on the same items, keyed 'plan', 'a', 'b-best-1', 'c-fast', 'd', ..."""
    best = RenderSettings(root=str(root))
    sr, frames = best.sample_rate, best.frames
    _warm_up(best, work)
    planned: list[tuple[ItemPlan, dict[str, np.ndarray]]] = []
    timings: dict[str, Timing] = {}
    timings["plan"] = _timed(
        "plan only: draw_item (reads, suitability)", n, lambda: planned.extend(_plan(best, n))
    )
    count = len(planned)
    timings["plan"].items = count
    first = planned[:source_items]

    def source() -> None:
        with threadpool_limits(1):
            _source_items()

    def _source_items() -> None:
        for item, audio in first:
            draws = {
                s.stem: SourceDraw.from_effects(s.effects, float(np.abs(audio[s.stem]).max()))
                for s in item.stems
            }
            rng = np.random.default_rng(item.item_seed)
            out = work / "source" / item_id(item.index)
            source_render_item(audio, sr, draws, frames, rng, out)

    timings["a"] = _timed("(a) source chain, mono", len(first), source)
    for quality in ("best", "fast"):
        settings = dataclasses.replace(best, quality=quality)
        for jobs in (1, 2):
            out = work / f"render-{quality}-{jobs}"
            timings[f"b-{quality}-{jobs}"] = _timed(
                f"(b) msaug render {quality}, {jobs} worker{'s' * (jobs > 1)}",
                count,
                lambda s=settings, o=out, j=jobs: render_dataset(
                    s, o, n=n, jobs=j, batch_size=batch_size, progress=False
                ),
            )
            _check_same_items(out, planned)

    def bare(items: list, quality: str, walls: list[float]) -> None:
        for item, audio in items:
            started = time.perf_counter()
            for stem in item.stems:
                apply_chain(audio[stem.stem], sr, stem.effects, frames, "pedalboard", quality)
            walls.append(time.perf_counter() - started)

    for quality in ("best", "fast"):
        label, walls = f"(c) bare apply_chain {quality}", []
        timings[f"c-{quality}"] = _timed(
            label, count, lambda q=quality, w=walls: bare(planned, q, w)
        )
        timings[f"c-{quality}"].item_walls = walls
        timings[f"c-{quality}-a"] = _timed(
            f"{label}, (a)'s items only", len(first), lambda q=quality: bare(first, q, [])
        )

    def plain() -> None:
        for item, _ in planned:
            _write_plain(item, frames, sr, work / "plain")

    timings["d"] = _timed("(d) I/O floor: read + write, no effects", count, plain)
    return timings


def scheduling_bound(costs: list[float], workers: int = 2) -> float:
    """The speed-up `workers` free cores could reach on these item costs: joblib hands each
    next item (batch size 1) to the first free worker, so the run ends with the busiest one."""
    loads = [0.0] * workers
    for cost in costs:
        loads[loads.index(min(loads))] += cost
    return sum(costs) / max(loads)


def report(timings: dict[str, Timing], load: tuple[float, float]) -> str:
    lines = [
        f"{'variant':<46} {'items':>5} {'wall s/item':>12} {'cpu s/item':>11}",
        *(
            f"{t.label:<46} {t.items:>5} {t.wall_per_item:>12.3f} {t.cpu / t.items:>11.3f}"
            for t in timings.values()
        ),
        "",
    ]
    per_item = {key: t.wall_per_item for key, t in timings.items()}
    source = per_item["a"]
    for q in ("best", "fast"):
        one, two, bare = per_item[f"b-{q}-1"], per_item[f"b-{q}-2"], per_item[f"c-{q}"]
        lines += [
            f"{q}: (a)/(b) = {source / one:.2f} (target >= 5; (a) is mono, (b) stereo); "
            f"(a)/(c) on (a)'s items = {source / per_item[f'c-{q}-a']:.2f}",
            f"{q}: (b)/(c) = {one / bare:.3f} (target <= 1.2)",
            f"{q}: 2-worker speed-up = {one / two:.2f} (target >= 1.8 on 2 free cores); "
            f"cores kept busy = {timings[f'b-{q}-2'].cpu / timings[f'b-{q}-2'].wall:.2f}; "
            f"bound from item costs = {scheduling_bound(timings[f'c-{q}'].item_walls):.2f}",
        ]
    lines.append(
        f"load average at start / end: {load[0]:.2f} / {load[1]:.2f} on {os.cpu_count()} CPUs"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="Source root (default: demo data in a temp dir).")
    parser.add_argument("--items", type=int, default=12, help="Items per variant.")
    parser.add_argument(
        "--source-items",
        type=int,
        default=3,
        help="Items for (a), the first of the --items (its np.convolve reverb is slow).",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="render_dataset batch size.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="msaug-bench-") as scratch:
        work = Path(scratch)
        root = args.root
        if root is None:
            root = work / "demo"
            command = [sys.executable, "-m", "augment", "demo-data", str(root)]
            subprocess.run([*command, "--tracks", "4", "--seconds", "30"], check=True)
        start_load = os.getloadavg()[0]
        timings = run(root, args.items, args.source_items, args.batch_size, work)
        print(report(timings, (start_load, os.getloadavg()[0])))


if __name__ == "__main__":
    main()
