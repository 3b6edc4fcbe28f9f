"""Disk planning for a render: refuse up front what cannot fit, explain a full disk after.

`--n 20000` of 10 s items is ~177 GB as wav PCM_16; finding that out hours in, from a
libsndfile "System error", wastes the night. The need is computed from the settings before
the first item (five files per item: the mixture and four stems), compared with the free
space under `--out`, and refused with the numbers unless `--force`.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from pathlib import Path

from augment.errors import ConfigError
from augment.settings import RenderSettings

CHANNELS = 2
FILES_PER_ITEM = 5
_SAMPLE_BYTES = {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}
FLAC_RATIO = 0.7
"""A cautious flac size relative to PCM for music (lossless music usually packs to 0.5-0.6)."""
_HEADER_BYTES = 80


def size_text(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def item_bytes(settings: RenderSettings) -> int:
    """Bytes one item takes on disk (an upper estimate for flac)."""
    pcm = settings.frames * CHANNELS * _SAMPLE_BYTES[settings.subtype]
    if settings.format == "flac":
        pcm = int(pcm * FLAC_RATIO)
    return FILES_PER_ITEM * (pcm + _HEADER_BYTES)


def _free_bytes(out: Path) -> int:
    existing = next(p for p in (out, *out.parents) if p.exists())
    return shutil.disk_usage(existing).free


def check_disk(out: Path, n_items: int, settings: RenderSettings, force: bool) -> int:
    """The bytes `n_items` will need; refused if the disk under `out` has less free."""
    need = n_items * item_bytes(settings)
    free = _free_bytes(out)
    if need > free and not force:
        raise ConfigError(
            f"{n_items} items need about {size_text(need)} ({size_text(item_bytes(settings))} "
            f"each as {settings.format} {settings.subtype}) and {out} has {size_text(free)} "
            "free; free space, render fewer items (--n) or flac (--format flac), or --force"
        )
    return need


def disk_full(out: Path, error: BaseException) -> bool:
    """Whether `error` (or one it was raised from) is a full disk or an exhausted quota.
    libsndfile reports ENOSPC as "System error" without an errno, so a libsndfile error with
    less than 1 MB free under `out` counts too."""
    chain: BaseException | None = error
    while chain is not None:
        if isinstance(chain, OSError) and chain.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if type(chain).__name__ == "LibsndfileError":
            with contextlib.suppress(OSError):
                return _free_bytes(out) < 10**6
        chain = chain.__cause__ or chain.__context__
    return False
