"""Tar shards of a dataset for copying and streaming (`msaug pack` / `msaug unpack`).

Tens of thousands of small wav files copy slowly to a GPU box and stream badly from object
storage; a few 1 GB tars do both well, and the `webdataset` library reads them as they are.
One sample per item: `<item_id>.mixture.wav`, `<item_id>.vocals.wav`, ... and `<item_id>.json`
(its rows). The manifest is copied next to the shards unchanged, so `Dataset.open` and
`msaug verify` work on a shard folder, and `unpack` restores the folder byte for byte.

Tar headers carry no clock, owner or host (mtime 0, uid/gid 0, no names), and members follow
table order, so one dataset always packs to the same bytes.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from manifests.card import CARD_FILE
from manifests.checksum import bytes_checksum
from manifests.dataset import Dataset
from manifests.derive import Written, derived_header, new_folder, write_manifest
from manifests.errors import ManifestError
from manifests.files import atomic_path
from manifests.listing import (
    JSON_MEMBER,
    SHARDS_INDEX,
    ListedFile,
    require_folder_form,
    sample_files,
    sample_jsons,
)
from manifests.paths import check_name, confined
from manifests.schema import DATASET_JSON, SCHEMA_VERSION
from manifests.tables import write_json

SHARD_NAME = "shard-{:06d}.tar"
DEFAULT_SHARD_SIZE = 10**9
_BLOCK = 512
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str) -> int:
    """Bytes in '1GB', '500MB', '1.5GiB' or '4096' (KB/MB/GB are powers of 1000)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size; write a number and a unit, e.g. 500MB or 1GB")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise ValueError(f"{text!r} is less than one byte; give a positive size such as 1GB")
    return size


def read_index(root: Path) -> dict[str, Any]:
    """shards.json, checked: each shard a plain `.tar` name inside `root`, with its size and
    the ids of its items (the index comes with the dataset, so it is untrusted input)."""
    path = root / SHARDS_INDEX
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(
            f"{path} is missing or corrupt ({exc}); pack the dataset again"
        ) from exc
    shards = index.get("shards") if isinstance(index, dict) else None
    if not isinstance(shards, list):
        raise ManifestError(f"{path} has no list of shards; pack the dataset again")
    for number, shard in enumerate(shards):
        where = f"{SHARDS_INDEX} shard {number}"
        if not isinstance(shard, dict) or set(shard) < {"name", "bytes", "items"}:
            raise ManifestError(f"{where} lacks name, bytes or items; pack the dataset again")
        check_name(shard["name"], where + " name")
        if not shard["name"].endswith(".tar"):
            raise ManifestError(f"{where}: {shard['name']!r} is not a .tar file name")
        if not isinstance(shard["bytes"], int) or not isinstance(shard["items"], list):
            raise ManifestError(f"{where}: bytes must be a number and items a list")
    return index


def _tar_bytes(member_sizes: Sequence[int]) -> int:
    """Bytes the members take in a tar: one header block each, data padded to whole blocks."""
    return sum(_BLOCK + -(-size // _BLOCK) * _BLOCK for size in member_sizes)


def plan_shards(sample_sizes: Sequence[int], shard_size: int) -> list[range]:
    """Consecutive samples per shard; a shard closes before the sample that would overfill it."""
    shards, start, filled = [], 0, 0
    for index, size in enumerate(sample_sizes):
        if index > start and filled + size > shard_size:
            shards.append(range(start, index))
            start, filled = index, 0
        filled += size
    if len(sample_sizes) > start:
        shards.append(range(start, len(sample_sizes)))
    return shards


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _read_listed(root: Path, listed: ListedFile) -> bytes:
    path = confined(root, listed.path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ManifestError(f"{path} is listed but missing; run `msaug verify {root}`") from exc
    if bytes_checksum(data) != listed.checksum:
        raise ManifestError(
            f"{path} does not match its checksum in the manifest; run `msaug verify {root}`"
        )
    return data


def _without_songs(dataset: Dataset, command: str | None) -> Dataset:
    """The dataset without its validation songs, with a header to write as a new manifest."""
    keep = set(dataset.items.loc[dataset.items["role"] != "valid", "item_id"])
    header = derived_header(dataset.header, command)
    header["where"] = "role != 'valid' (msaug pack --no-valid)"
    return dataset.rows_of(keep, header=header)


def _copy_manifest(dataset: Dataset, target: Path) -> None:
    """Tables and card first, dataset.json last: the header marks a finished folder."""
    source = dataset.root
    for relative in (*dataset.table_files(), CARD_FILE, DATASET_JSON):
        if (source / relative).is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(confined(source, relative), target / relative)


def pack(
    root: str | Path,
    out: str | Path,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = False,
    include_valid: bool = True,
    command: str | None = None,
) -> list[Path]:
    """Write the dataset at `root` as shards in `out`; every file is checked while it is read.

    `include_valid=False` leaves the validation songs out (they are verbatim source audio,
    which some licences do not let one share): the shards then carry a manifest of their own,
    the rendered rows only, with its own digest."""
    root = Path(root)
    dataset = Dataset.open(root)
    rewritten = not include_valid and bool((dataset.items["role"] == "valid").any())
    if rewritten:
        dataset = _without_songs(dataset, command)
    require_folder_form(dataset)
    if dataset.schema_version != SCHEMA_VERSION:
        raise ManifestError(
            f"{root} is a manifest schema {dataset.schema_version} dataset; shards are written "
            f"in schema {SCHEMA_VERSION}: run `msaug migrate {root}` first"
        )
    jsons = sample_jsons(dataset)
    samples = list(sample_files(dataset, jsons).values())
    plan = plan_shards([_tar_bytes([f.bytes for f in s]) for s in samples], shard_size)
    index: dict[str, Any] = {"format": "webdataset", "shard_size": shard_size, "shards": []}
    with new_folder(out, sources=[root]) as folder:
        bar = tqdm(total=len(samples), unit="item", desc="pack", disable=None if progress else True)
        for number, members in enumerate(plan):
            name = SHARD_NAME.format(number)
            with (
                atomic_path(folder / name) as temp,
                tarfile.open(temp, "w", format=tarfile.PAX_FORMAT) as tar,
            ):
                for sample in (samples[i] for i in members):
                    for listed in sample:
                        if listed.name == JSON_MEMBER:
                            data = jsons[listed.item_id]
                        else:
                            data = _read_listed(root, listed)
                        _add_member(tar, listed.member, data)
                    bar.update()
            ids = [samples[i][0].item_id for i in members]
            size = (folder / name).stat().st_size
            index["shards"].append({"name": name, "bytes": size, "items": ids})
        bar.close()
        write_json(folder / SHARDS_INDEX, index)
        if rewritten:  # other rows than the folder's: a manifest of its own
            write_manifest(folder, dataset.header, dataset.items, dataset.stems)
            if (root / CARD_FILE).is_file():
                shutil.copyfile(confined(root, CARD_FILE), folder / CARD_FILE)
        else:
            _copy_manifest(dataset, folder)
    return [Path(out) / shard["name"] for shard in index["shards"]]


def iter_members(path: Path, read: bool) -> Iterator[tuple[str, int, bytes | None]]:
    """(name, size, data) of each file in a shard; data is None unless `read`.

    Shards are untrusted: a member that is not a regular file (a symlink, hard link, device,
    folder) or that comes a second time is refused, whatever its name.
    """
    seen: set[str] = set()
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            if not info.isreg():
                raise ManifestError(
                    f"{path} holds {info.name!r}, which is a {_member_kind(info)}, not a file; "
                    "shards written by msaug pack hold files only: do not unpack it"
                )
            if info.name in seen:
                raise ManifestError(
                    f"{path} holds {info.name!r} twice; shards written by msaug pack hold each "
                    "file once: do not unpack it"
                )
            seen.add(info.name)
            handle = tar.extractfile(info) if read else None
            yield info.name, info.size, handle.read() if handle else None


def _member_kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return f"symbolic link to {info.linkname!r}"
    if info.islnk():
        return f"hard link to {info.linkname!r}"
    return "folder" if info.isdir() else "device or special file"


def unpack(shards: str | Path, out: str | Path, progress: bool = False) -> Written:
    """Restore the folder form of a packed dataset, checking every file against the manifest."""
    shards = Path(shards)
    dataset = Dataset.open(shards)
    index = read_index(shards)
    expected = {
        listed.member: listed
        for members in sample_files(dataset, sample_jsons(dataset)).values()
        for listed in members
    }
    n_audio = sum(listed.name != JSON_MEMBER for listed in expected.values())
    with new_folder(out, sources=[shards]) as folder:
        for shard in tqdm(index["shards"], unit="shard", disable=None if progress else True):
            path = confined(shards, shard["name"])
            try:
                for name, _, data in iter_members(path, read=True):
                    _restore(folder, path, name, data, expected)
            except (OSError, EOFError, tarfile.TarError) as exc:
                raise ManifestError(
                    f"{path} is missing or damaged ({exc}); run `msaug verify {shards}`"
                ) from exc
        if expected:
            raise ManifestError(
                f"{len(expected)} files of the manifest are in no shard (first: "
                f"{next(iter(expected))}); run `msaug verify {shards}`"
            )
        _copy_manifest(dataset, folder)
    return Written(Path(out), len(dataset), 0, n_audio)


def _restore(
    folder: Path, shard: Path, name: str, data: bytes | None, expected: dict[str, ListedFile]
) -> None:
    listed = expected.pop(name, None)
    if listed is None:
        raise ManifestError(f"{shard} holds {name}, which the manifest does not list; repack")
    if data is None or bytes_checksum(data) != listed.checksum:
        raise ManifestError(
            f"{shard} holds {name} damaged (checksum differs from the manifest); "
            f"run `msaug verify {shard.parent}`"
        )
    if listed.name == JSON_MEMBER:
        return
    target = folder / listed.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
