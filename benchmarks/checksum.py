"""Checksum throughput: why the manifest uses xxh3_128 (see docs/manifest.md, docs/performance.md).

Hashes the same buffer of random bytes with each algorithm and prints MB/s and the speed ratio
against sha256, the usual default. Verifying a 20,000-item dataset hashes ~100 GB, so the
algorithm decides whether `msaug verify` is bound by the disk or by the CPU.

    python benchmarks/checksum.py [--megabytes 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import time
from collections.abc import Callable

import numpy as np
import xxhash

ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "xxh3_128": xxhash.xxh3_128_hexdigest,
    "blake2b": lambda data: hashlib.blake2b(data).hexdigest(),
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),
    "md5": lambda data: hashlib.md5(data).hexdigest(),
}
BASELINE = "sha256"


def best_seconds(function: Callable[[bytes], str], data: bytes, repeats: int) -> float:
    """Fastest of `repeats` runs: the least disturbed by other work on a shared machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(data)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=args.megabytes * 10**6, dtype=np.uint8).tobytes()
    seconds = {name: best_seconds(f, data, args.repeats) for name, f in ALGORITHMS.items()}
    print(f"{args.megabytes} MB of random bytes, best of {args.repeats}, {platform.machine()}")
    print(f"{'algorithm':<10} {'MB/s':>8} {'vs ' + BASELINE:>10}")
    for name, time_taken in seconds.items():
        speed = args.megabytes / time_taken
        print(f"{name:<10} {speed:>8.0f} {seconds[BASELINE] / time_taken:>9.2f}x")


if __name__ == "__main__":
    main()
