"""Writing a dataset made from other datasets: a selection, a merge, an unpacked shard set.

The output is assembled in a hidden sibling folder and renamed onto its name in one step, so a
crash never leaves a folder that `Dataset.open` accepts but that lacks files. Each run's temp
folder has its own name and holds its lock (`manifests.lock`) while it fills: the next run with
the same `--out` removes leftovers whose writer is dead, and refuses to start while one is alive.
Audio is hard-linked from its source, so a selection of a 100 GB dataset costs no disk space.
Sharing inodes is safe because dataset files are only ever replaced by rename
(`files.atomic_path`), never rewritten in place.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from manifests.checksum import CHECKSUM_ALGO
from manifests.errors import ManifestError
from manifests.files import atomic_path
from manifests.lock import WriterLock, holder
from manifests.tables import write_tables
from manifests.writer import now, package_version

TEMP_FOLDER_MARK = ".tmp-"
SETUP_MARK = ".setup-"
SETUP_SECONDS = 60.0
"""A setup folder (a temp folder before its lock) older than this was left by a crash."""
DERIVATION_KEYS = ("where", "parent", "parts")
"""Header keys that describe how a dataset was derived; a child records its own, not these."""


@dataclass(frozen=True)
class Written:
    """What a derived dataset cost: files hard-linked (free) and files copied (disk space)."""

    root: Path
    n_items: int
    linked: int
    copied: int


@contextlib.contextmanager
def new_folder(out: str | Path, sources: Iterable[Path] = ()) -> Iterator[Path]:
    """Yield an empty hidden sibling of `out`; rename it onto `out` when the block succeeds."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ManifestError(f"{out} already exists and is not empty; choose a new --out folder")
    for source in sources:
        if out.resolve().is_relative_to(source.resolve()):
            raise ManifestError(
                f"--out {out} is inside the input {source}; choose a folder outside"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    temp, lock = _locked_temp(out)
    try:
        yield temp
        try:
            os.replace(temp, out)  # POSIX rename also replaces an empty folder
        except OSError as exc:
            raise ManifestError(
                f"{out} was written by another run meanwhile ({exc.strerror}); choose a new --out"
            ) from None
        lock.root = out  # the lock file moved with the folder: remove it from there
        lock.release(remove=True)
    finally:
        lock.release()
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def _locked_temp(out: Path) -> tuple[Path, WriterLock]:
    """A new temp folder for `out` that is locked from the moment it has its temp name: it is
    made and locked under a setup name that the leftover search does not match, then renamed
    (the lock follows the inode)."""
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    setup = out.with_name(f".{out.name}{SETUP_MARK}{token}")
    setup.mkdir()
    try:
        lock = WriterLock.acquire(setup)
    except BaseException:
        shutil.rmtree(setup, ignore_errors=True)
        raise
    temp = out.with_name(f".{out.name}{TEMP_FOLDER_MARK}{token}")
    os.replace(setup, temp)
    lock.root = temp
    return temp, lock


def _remove_leftovers(out: Path) -> None:
    """Temp folders of runs with the same `--out` that died; refuse if one is alive."""
    prefix = glob.escape(str(out.with_name(f".{out.name}")))
    for stale in glob.glob(prefix + TEMP_FOLDER_MARK + "*"):
        writing = holder(stale)  # None also when it vanished: it was renamed onto `out`
        if writing is not None:
            raise ManifestError(
                f"another msaug (pid {writing.get('pid', '?')}) is writing {out}; wait for it "
                "or choose another --out"
            )
        shutil.rmtree(stale, ignore_errors=True)
    for setup in glob.glob(prefix + SETUP_MARK + "*"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - os.stat(setup).st_mtime > SETUP_SECONDS:
                shutil.rmtree(setup, ignore_errors=True)


def place_file(source: Path, target: Path, copy: bool) -> bool:
    """Hard-link `source` to `target` (copy when asked or when linking fails); True if linked.
    Through a temp name (`files.atomic_path`), so a crash never leaves a partial `target`."""
    if not source.is_file():
        raise ManifestError(
            f"{source} is listed in its manifest but missing; run `msaug verify` on that dataset"
        )
    with atomic_path(target) as temp:
        if not copy:
            with contextlib.suppress(OSError):  # another filesystem, or one without hard links
                os.link(source, temp)
                return True
        shutil.copyfile(source, temp)
    return False


def derived_header(base: dict[str, Any], command: str | None) -> dict[str, Any]:
    """`base` without its own derivation keys and provenance, restamped for the dataset being
    written: the identity, stems and effect columns carry over, provenance is this command's."""
    header = {k: v for k, v in base.items() if k not in (*DERIVATION_KEYS, "provenance")}
    made = {"msaug_version": package_version("msaug"), "created": now(), "command": command}
    source_root = (base.get("provenance") or {}).get("source_root")
    if source_root is not None:  # where `msaug rerender` finds the songs by default
        made["source_root"] = source_root
    header.update(checksum_algo=CHECKSUM_ALGO, provenance=made)
    return header


def write_manifest(
    folder: Path, header: dict[str, Any], items: pd.DataFrame, stems: pd.DataFrame
) -> None:
    """The two tables, then dataset.json: a folder is only a dataset once its header exists."""
    write_tables(folder, header, items, stems)
