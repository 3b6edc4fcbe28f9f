"""Where the render's DSP time goes, effect by effect, on the items benchmarks/render.py draws.

For msaug, `apply_chain` is split into its parts: the fused Rubber Band call, then each
pedalboard effect alone (run one at a time here, so each can be timed). For the source's
chain (benchmarks/source_reimpl.py), each of its steps is timed on the first --source-items.
CPU seconds of this process, per item and as a share of the total, with the load average.
BLAS runs on one thread: the source's `np.convolve` reverb calls OpenBLAS once per output
sample, and with two BLAS threads on a machine where another process holds a core, each call
waits for the scheduler (measured: over 10 min instead of about 15 s for 2 items).

    python benchmarks/chain_profile.py --root DEMO_ROOT [--items 12] [--source-items 2]

DEMO_ROOT: `msaug demo-data DEMO_ROOT --tracks 4 --seconds 30 --seed 0` gives the same songs
as benchmarks/render.py.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pedalboard
import source_reimpl
from render import _plan
from threadpoolctl import threadpool_limits

from augment.chain import _rubber_band
from augment.effects import PitchShift, TimeStretch
from augment.render import RenderSettings
from augment.stretch import pitch_stretch


def _print(title: str, cpu: dict[str, float], runs: dict[str, int], items: int) -> None:
    total = sum(cpu.values())
    print(f"{title}: CPU s per item, share, runs")
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<22} {seconds / items:7.3f} {100 * seconds / total:5.1f}% {runs[name]:>4}")
    print(f"  {'total':<22} {total / items:7.3f}")


def msaug_chain(planned: list, sr: int, frames: int, quality: str) -> None:
    cpu: dict[str, float] = defaultdict(float)
    runs: dict[str, int] = defaultdict(int)
    for item, audio in planned:
        for stem in item.stems:
            x = audio[stem.stem]
            rb = _rubber_band(stem.effects)
            if rb is not None:
                started = time.process_time()
                x = pitch_stretch(x, sr, rb[0], rb[1], frames, "pedalboard", quality)
                cpu["rubber band"] += time.process_time() - started
                runs["rubber band"] += 1
            for effect in stem.effects:
                if isinstance(effect, (PitchShift, TimeStretch)):
                    continue
                started = time.process_time()
                x = pedalboard.Pedalboard([effect.plugin()])(x, float(sr), reset=True)
                cpu[effect.kind] += time.process_time() - started
                runs[effect.kind] += 1
    _print(f"msaug apply_chain, quality {quality}, {len(planned)} items", cpu, runs, len(planned))


def source_chain(planned: list, sr: int, frames: int) -> None:
    cpu: dict[str, float] = defaultdict(float)
    runs: dict[str, int] = defaultdict(int)

    def timed(name: str, work: Callable) -> Callable:
        def run(*args, **kwargs):
            started = time.process_time()
            result = work(*args, **kwargs)
            cpu[name] += time.process_time() - started
            runs[name] += 1
            return result

        return run

    real = source_reimpl.librosa.effects
    # Only source_reimpl's own bindings are timed: librosa's pitch_shift calls its own
    # time_stretch, and that time belongs to the pitch shift.
    fake = SimpleNamespace(
        effects=SimpleNamespace(
            pitch_shift=timed("pitch (librosa)", real.pitch_shift),
            time_stretch=timed("stretch (librosa)", real.time_stretch),
        )
    )
    patches = (
        mock.patch.object(source_reimpl, "librosa", fake),
        mock.patch.object(
            source_reimpl, "_reverb", timed("reverb (np.convolve)", source_reimpl._reverb)
        ),
    )
    started = time.process_time()
    with patches[0], patches[1], tempfile.TemporaryDirectory() as scratch:
        for item, audio in planned:
            draws = {
                s.stem: source_reimpl.SourceDraw.from_effects(
                    s.effects, float(np.abs(audio[s.stem]).max())
                )
                for s in item.stems
            }
            rng = np.random.default_rng(item.item_seed)
            out = Path(scratch) / str(item.index)
            source_reimpl.render_item(audio, sr, draws, frames, rng, out)
    rest = time.process_time() - started - sum(cpu.values())
    cpu["rest (normalise, compress, write)"] = rest
    runs["rest (normalise, compress, write)"] = len(planned)
    _print(f"source chain, {len(planned)} items", cpu, runs, len(planned))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="Source root (demo data).")
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--source-items", type=int, default=2)
    args = parser.parse_args()
    threadpool_limits(1)
    settings = RenderSettings(root=str(args.root))
    sr, frames = settings.sample_rate, settings.frames
    planned = _plan(settings, args.items)
    pitch_stretch(np.zeros((2, sr), np.float32), sr, 1.0, 1.1, sr // 2)  # load the library
    load = os.getloadavg()[0]
    for quality in ("best", "fast"):
        msaug_chain(planned, sr, frames, quality)
    if args.source_items:
        import librosa

        x = np.zeros(sr, np.float32)  # librosa's first calls compile code
        librosa.effects.time_stretch(librosa.effects.pitch_shift(x, sr=sr, n_steps=1), rate=1.1)
        source_chain(planned[: args.source_items], sr, frames)
    print(f"load average at start / end: {load:.2f} / {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
