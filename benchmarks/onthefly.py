"""The project's reason to exist, measured: reading rendered crops against rendering them per crop.

A user who does not render offline augments in the training loader (MSST / audiomentations
style): every crop draws a chain and runs the DSP. Both sides here use the same default chain
(`augment.config` defaults, incoherent mode), the same crop length, rate (44.1 kHz), stereo and
Rubber Band quality, one process and one thread each:

- rendered: the mstrain loader (`train.data`, 0 workers) on a dataset `msaug render` wrote
  with items as long as the crops (so every read is a whole item, as a render for this crop
  length would be used);
- on the fly: per crop, `augment.plan.draw_item` (mode, songs, offsets, chain, the silence
  checks; reading only the frames it needs) and `augment.chain.apply_chain` per stem (one
  Rubber Band call per stem when pitch or tempo is drawn, then pedalboard), summed into the
  mixture in memory: what a competent on-the-fly loader does, without file round trips.

    python benchmarks/onthefly.py [--crops 24] [--seconds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from shards import crops_per_second  # a sibling script: the same timed loader epoch

from augment.chain import apply_chain
from augment.config import load_config, parse_mode
from augment.plan import draw_item
from augment.render import RenderSettings, render_dataset
from augment.sources import SourceRoot

SOURCES = Path(__file__).resolve().parent.parent / "tests" / "sources_factory.py"
RATE = 44100


def make_sources(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("sources_factory", SOURCES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_source_root(folder, tracks=6, seconds=40.0, sample_rate=RATE)


def on_the_fly_rate(settings: RenderSettings, crops: int) -> tuple[float, float]:
    """Crops per second of drawing and rendering each crop in memory; and the share of the
    time spent in the DSP (the rest is drawing: reads and silence checks)."""
    config = load_config(None)
    weights = parse_mode(settings.mode)
    tracks = SourceRoot.open(settings.root).tracks("train")
    dsp = 0.0
    started = time.perf_counter()
    for index in range(crops):
        plan, audio = draw_item(
            index, settings.seed, weights, config, tracks, settings.frames, RATE, Counter()
        )
        begun = time.perf_counter()
        stems = [
            apply_chain(audio[stem.stem], RATE, stem.effects, settings.frames, "pedalboard", "best")
            * np.float32(10 ** (stem.gain_db / 20))
            for stem in plan.stems
        ]
        np.sum(stems, axis=0)
        dsp += time.perf_counter() - begun
    total = time.perf_counter() - started
    return crops / total, dsp / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        root = make_sources(Path(folder) / "src")
        settings = RenderSettings(
            root=str(root), seconds=args.seconds, sample_rate=RATE, mode="incoherent"
        )
        dataset = Path(folder) / "ds"
        render_dataset(settings, dataset, n=args.crops, jobs=1, progress=False)
        on_the_fly_rate(settings, 2)  # warm: pedalboard's first Rubber Band call, page cache
        read = crops_per_second(str(dataset), 0, args.crops, args.seconds)
        fly, dsp_share = on_the_fly_rate(settings, args.crops)
        print(
            f"{args.crops} crops of {args.seconds} s at {RATE} Hz stereo, default chain "
            "(incoherent, Rubber Band R3), 1 process, 1 thread"
        )
        print(f"  rendered crops (mstrain loader): {read:8.2f} crops/s  1.00x")
        print(
            f"  rendered on the fly per crop:    {fly:8.2f} crops/s  {fly / read:.4f}x"
            f"  ({dsp_share:.0%} of it in the DSP)"
        )
        print(f"  reading is {read / fly:.0f}x faster than rendering per crop")


if __name__ == "__main__":
    main()
