"""Level change of each effect at the default ranges, measured on real stems.

For every effect of the default config, `--n` draws: a random stem and 10 s segment of the
sources (skipping silent ones, as the render does), the effect's parameters drawn from its
default range, the segment rendered through `augment.chain.apply_chain` alone. It prints the
RMS change (dB) per effect: mean, 5th and 95th percentile, overall and per stem; the table in
docs/effects.md comes from it. Not a timing benchmark: the numbers do not depend on the load.

    python benchmarks/effect_levels.py --root demo/sources --n 200
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from dataclasses import replace

import numpy as np

from augment.chain import apply_chain, source_frames
from augment.config import build_config
from augment.effects import rms
from augment.plan import build_effect
from augment.segments import rejection
from augment.sources import SourceRoot, read_segment
from manifests.schema import STEM_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="MUSDB18-HQ-layout source root")
    parser.add_argument("--n", type=int, default=200, help="draws per effect")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = build_config({})
    tracks = SourceRoot.open(args.root).tracks("train")
    sr = tracks[0].sample_rate
    frames = round(args.seconds * sr)
    rng = np.random.default_rng(args.seed)
    changes: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for spec in config.effects[STEM_NAMES[0]]:
        done = 0
        while done < args.n:
            stem = STEM_NAMES[rng.integers(len(STEM_NAMES))]
            values = {name: float(rng.uniform(lo, hi)) for name, lo, hi in spec.ranges}
            probe = build_effect(spec.kind, values, np.ones((2, 1), np.float32), sr)
            need = source_frames([probe], frames, sr)
            track = tracks[rng.integers(len(tracks))]
            if track.num_frames < need:
                continue
            start = int(rng.integers(0, track.num_frames - need + 1))
            segment = read_segment(track, stem, start, need)
            if rejection(segment, config.suitability) is not None:
                continue
            effect = build_effect(spec.kind, values, segment, sr)
            variants = {spec.kind: effect}
            if spec.kind == "compressor":  # what the makeup makes up for
                variants["compressor, no makeup"] = replace(effect, makeup_db=0.0)
            reference = segment[:, :frames]
            for name, variant in variants.items():
                out = apply_chain(segment, sr, [variant], frames, "pedalboard", "best")
                changes[name][stem].append(20 * math.log10(rms(out) / rms(reference)))
            done += 1
    print(f"RMS change (dB) at the default ranges, {args.n} draws per effect, root {args.root}")
    print("| effect | mean | 5th pct | 95th pct | per stem: mean |")
    print("|---|---:|---:|---:|---|")
    for kind, by_stem in changes.items():
        every = np.concatenate([np.asarray(v) for v in by_stem.values()])
        stems = ", ".join(f"{s} {np.mean(by_stem[s]):+.2f}" for s in STEM_NAMES if s in by_stem)
        low, high = np.percentile(every, [5, 95])
        print(f"| {kind} | {every.mean():+.2f} | {low:+.2f} | {high:+.2f} | {stems} |")


if __name__ == "__main__":
    main()
