"""Hash the sources once: a checksum index kept beside them (`msaug index ROOT`).

A render's identity names every source file by content (`augment.identity`), which means
reading all of MUSDB18-HQ (~30 GB) at every start; 100 `--shard` jobs would read it 100 times.
The index `ROOT/.msaug-index.json` remembers each file's checksum with the stat fields that
would change if the file did (size, mtime_ns, inode); a file whose fields differ is hashed
again. `msaug index ROOT` builds it (and `msaug prepare` for the cache it writes); a render
uses it and updates it when the root is writable, and hashes in memory when it is not.

The index only speeds up hashing: a stale entry cannot survive a changed size, mtime or inode,
and the identity it feeds still names the checksum of every file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from augment.sources import STEM_SUFFIX, SourceRoot, Track
from manifests.checksum import CHECKSUM_ALGO, file_checksum
from manifests.schema import STEM_NAMES

INDEX_FILE = ".msaug-index.json"
INDEX_VERSION = 1


def source_files(track: Track) -> dict[str, Path]:
    """The files a render reads from for `track`, by name relative to the source root."""
    if track.form == "stem":
        return {f"{track.subset}/{track.name}{STEM_SUFFIX}": track.path}
    return {f"{track.subset}/{track.name}/{s}.wav": track.stem_path(s) for s in STEM_NAMES}


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _load(root: Path) -> dict[str, Any]:
    """The index's entries, or none if it is missing, damaged or of another kind."""
    try:
        index = json.loads((root / INDEX_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION:
        return {}
    if index.get("checksum_algo") != CHECKSUM_ALGO or not isinstance(index.get("files"), dict):
        return {}
    return index["files"]


def _save(root: Path, files: Mapping[str, Any]) -> bool:
    """Write the index atomically; False if the root is read-only (a shared mount)."""
    payload = {"version": INDEX_VERSION, "checksum_algo": CHECKSUM_ALGO, "files": dict(files)}
    temp = root / f"{INDEX_FILE}.tmp-{os.getpid()}"
    try:
        temp.write_text(json.dumps(payload, sort_keys=True))
        os.replace(temp, root / INDEX_FILE)
    except OSError:
        temp.unlink(missing_ok=True)
        return False
    return True


def checksums(
    root: str | Path, files: Mapping[str, Path], progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Per relative name in `files`: its bytes and checksum, hashing only what the index at
    `root` does not hold with the same size, mtime and inode; the index is then updated."""
    root = Path(root)
    known = _load(root)
    result, changed = {}, False
    todo = []
    for name, path in files.items():
        key = _stat_key(path)
        entry = known.get(name)
        if isinstance(entry, dict) and entry.get("stat") == key and entry.get("checksum"):
            result[name] = {"bytes": key[0], "checksum": entry["checksum"]}
        else:
            todo.append((name, path, key))
    for name, path, key in tqdm(
        todo, desc="hashing sources", unit="file", disable=not progress or not todo
    ):
        checksum = file_checksum(path)
        result[name] = {"bytes": key[0], "checksum": checksum}
        known[name] = {"stat": key, "checksum": checksum}
        changed = True
    if changed:
        _save(root, known)
    return {name: result[name] for name in sorted(result)}


def index_sources(root: str | Path, progress: bool = False) -> tuple[int, bool]:
    """Hash every track file under a source root into its index (`msaug index ROOT`).

    Returns the number of files and whether the index could be written (False on a
    read-only root: renders then hash in memory at every start)."""
    source = SourceRoot.open(root)
    named = {n: p for track in source.tracks() for n, p in source_files(track).items()}
    checksums(source.root, named, progress)
    return len(named), _load(source.root).keys() >= named.keys()
