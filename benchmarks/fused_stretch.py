"""What fusing pitch shift and time stretch into one Rubber Band call saves.

One 10 s stereo stem at 44.1 kHz (seeded noise, read with `frames_to_read` as `msaug render`
does), through `augment.stretch.pitch_stretch` on pedalboard's Rubber Band: pitch only, stretch
only, both in one call (what `augment.chain` does), and both as two calls in a row. Best of
three, wall and CPU seconds, with the load average.

    python benchmarks/fused_stretch.py [--quality best|fast]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from augment.stretch import QUALITIES, frames_to_read, pitch_stretch

SR = 44100
FRAMES = 10 * SR
SEMITONES, FACTOR = 1.0, 1.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", choices=QUALITIES, default="best")
    quality = parser.parse_args().quality
    rng = np.random.default_rng(0)
    audio = 0.1 * rng.standard_normal((2, frames_to_read(FRAMES, FACTOR, SR)), dtype=np.float32)
    # The two-call variant stretches the pitch-shifted output, so that must be long enough too.
    longer = frames_to_read(FRAMES, FACTOR, SR)

    def run(semitones: float, factor: float, x: np.ndarray = audio, frames: int = FRAMES):
        return pitch_stretch(x, SR, semitones, factor, frames, "pedalboard", quality)

    cases = {
        f"pitch {SEMITONES:+g} only": lambda: run(SEMITONES, 1.0),
        f"stretch {FACTOR:g} only": lambda: run(0.0, FACTOR),
        "both, one call (msaug)": lambda: run(SEMITONES, FACTOR),
        "both, two calls": lambda: run(0.0, FACTOR, run(SEMITONES, 1.0, frames=longer)),
    }
    run(SEMITONES, FACTOR)  # first call loads the library
    load = os.getloadavg()[0]
    print(f"{'pedalboard ' + quality:<24} {'wall s':>7} {'cpu s':>7}")
    for name, work in cases.items():
        best = (float("inf"), float("inf"))
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            work()
            best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
        print(f"{name:<24} {best[0]:>7.2f} {best[1]:>7.2f}")
    print(f"load average at start / end: {load:.2f} / {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
