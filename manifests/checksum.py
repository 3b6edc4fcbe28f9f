"""File checksums named in the schema.

xxh3-128 is used because verification of a 20,000-item dataset reads ~100 GB: at ~15 GB/s
it is bound by the disk, where sha256 (~1.7 GB/s even with SHA-NI) would be bound by the CPU.
`benchmarks/checksum.py` measures the choice (numbers in docs/performance.md).
"""

from __future__ import annotations

from pathlib import Path

import xxhash

CHECKSUM_ALGO = "xxh3_128"
_CHUNK = 1 << 20


def bytes_checksum(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def file_checksum(path: str | Path) -> str:
    """Checksum of a file's bytes, read in chunks so memory stays bounded."""
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
