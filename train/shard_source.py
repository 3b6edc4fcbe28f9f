"""Where packed shards come from, and their members as they stream in, checked.

`mstrain --data` takes a folder of shards written by `msaug pack`, or a URL of one: anything
fsspec opens (`file://`, `http(s)://`, `s3://` with s3fs, `gs://` with gcsfs, ...), or a
webdataset `pipe:` command with `{name}` where the file name goes (`pipe:aws s3 cp
s3://bucket/ds/{name} -`). The manifest beside the shards (dataset.json, shards.json, the
tables: a few MB) is fetched first into a temporary folder and opened and checked like any
dataset (paths, schema, the tables against dataset.json's checksums and digest); the shards are
then only ever streamed, never stored: local disk holds the manifest and nothing else.

Shards are untrusted. A shard is read as an uncompressed tar stream; only members the manifest
lists for the items wanted are read (links, devices and unknown names never are), and only
after their header shows the size the manifest gives; each is hashed as it arrives and
compared with its checksum in the tables. A member that is missing, repeated, damaged or cut
short is an error naming the shard and the item. Manifest files are fetched with a size limit
(their sizes are in dataset.json), and a `pipe:` command is only ever given file names of
the kinds `msaug pack` writes.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fsspec
import soundfile as sf
from webdataset.gopen import gopen

from manifests import Dataset, ManifestError
from manifests.checksum import bytes_checksum
from manifests.listing import SHARDS_INDEX, ListedFile
from manifests.pack import read_index
from manifests.paths import confined
from manifests.schema import DATASET_JSON
from manifests.tables import listed_table_files
from manifests.verify import manifest_problems
from train.errors import TrainError

PIPE = "pipe:"
JSON_LIMIT = 64 << 20
"""The most bytes dataset.json or shards.json may have (a 20,000-item one has about 2 MB)."""
_READ = 1 << 20
"""Bytes per read of a shard stream: tarfile's default (10 KB) made each read one round trip
through fsspec's event loop, a quarter of the local speed over HTTP."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
"""The file names a pipe command may be given: all that `msaug pack` writes, no shell syntax."""


def is_shard_data(data: str) -> bool:
    """A URL, a pipe command, or a local folder that `msaug pack` wrote."""
    return "://" in data or data.startswith(PIPE) or (Path(data) / SHARDS_INDEX).is_file()


@dataclass(frozen=True)
class ShardSource:
    """The shard folder's address; `open(name)` streams one of its files (plain data, so it
    pickles into DataLoader workers)."""

    base: str

    def __post_init__(self) -> None:
        if self.base.startswith(PIPE) and "{name}" not in self.base:
            raise TrainError(
                f"--data {self.base!r}: a pipe: command needs {{name}} where the file name goes, "
                "e.g. 'pipe:aws s3 cp s3://bucket/ds/{name} -'"
            )

    def where(self, name: str) -> str:
        if self.base.startswith(PIPE):
            return self.base.replace("{name}", name)
        return f"{self.base.rstrip('/')}/{name}"

    def open(self, name: str) -> IO[bytes]:
        """`name` is checked (`manifests.paths`) by whoever read it from the manifest. A pipe
        command takes only names of letters, digits, `_.-/` (which need no quoting, also
        inside quotes the user wrote around `{name}`): others come from a hostile manifest."""
        if self.base.startswith(PIPE):
            if not _SAFE_NAME.fullmatch(name) or ".." in name.split("/"):
                raise TrainError(
                    f"{name!r} is not a file name msaug pack writes; refusing to pass it to a "
                    "pipe: command (the manifest was altered)"
                )
            return gopen(self.base.replace("{name}", name), "rb")
        if "://" not in self.base:  # a local folder may hold links: never follow one out
            return open(confined(Path(self.base), name), "rb")
        url = self.where(name)
        streaming = {"block_size": 0} if url.startswith(("http://", "https://")) else {}
        try:  # read front to back: no range requests, no cache of the file anywhere
            return fsspec.open(url, "rb", **streaming).open()
        except (ImportError, ValueError) as exc:  # no filesystem for the protocol
            raise TrainError(f"cannot open {url}: {exc}") from None


@dataclass
class ShardedDataset(Dataset):
    """A packed dataset seen through its manifest; its audio lives in `source`'s shards."""

    source: ShardSource | None = None
    shards: list[dict[str, Any]] = field(default_factory=list)

    def manifest_checksum(self) -> str:
        """The same value as for the folder form (the checksums of its table files), so a
        run can resume from the shards of the dataset it started on, or the other way round."""
        return "".join(
            entry["checksum"]
            for table in ("items", "stems")
            for entry in listed_table_files(self.header, table)
        )


def _fetch(source: ShardSource, name: str, folder: Path, limit: int) -> Path:
    """Copy one manifest file, refusing more than `limit` bytes (a hostile or broken source
    must not fill the local disk)."""
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with source.open(name) as stream, open(target, "wb") as out:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise TrainError(
                        f"{source.where(name)} is larger than {limit} bytes, more than its "
                        "manifest allows; is --data the folder `msaug pack` wrote?"
                    )
                out.write(chunk)
    except TrainError:
        raise
    except Exception as exc:  # OSError, or the transport's own (aiohttp, fsspec)
        raise TrainError(
            f"cannot read {source.where(name)} ({type(exc).__name__}: {exc}); is --data the "
            "folder `msaug pack` wrote, or its URL?"
        ) from None
    if size == 0:  # a pipe whose command failed gives nothing
        raise TrainError(f"{source.where(name)} is empty or could not be fetched")
    return target


def open_shards(data: str) -> ShardedDataset:
    """Fetch and check the manifest beside the shards; no shard is read here."""
    source = ShardSource(data)
    folder = Path(tempfile.mkdtemp(prefix="mstrain-manifest-"))
    try:
        header_path = _fetch(source, DATASET_JSON, folder, JSON_LIMIT)
        try:
            header = json.loads(header_path.read_text())
        except (UnicodeDecodeError, ValueError) as exc:
            raise TrainError(f"{source.where(DATASET_JSON)} is not valid JSON ({exc})") from None
        if not isinstance(header, dict):
            raise TrainError(f"{source.where(DATASET_JSON)} is not a dataset header")
        try:
            _fetch(source, SHARDS_INDEX, folder, JSON_LIMIT)
            for table in ("items", "stems"):
                for entry in listed_table_files(header, table):
                    size = entry.get("bytes")
                    if not isinstance(size, int) or size < 1:
                        raise TrainError(f"{DATASET_JSON} lists {entry['path']} without its size")
                    _fetch(source, entry["path"], folder, size)
            dataset = Dataset.open(folder)
            problems = manifest_problems(dataset)
            index = read_index(folder)
        except ManifestError as exc:
            raise TrainError(f"{data}: {exc}") from None
        if problems:
            raise TrainError(f"{data}: {problems[0].path}: {problems[0].detail}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return ShardedDataset(
        Path(data),
        dataset.header,
        dataset.items,
        dataset.stems,
        dataset.schema_version,
        source=source,
        shards=index["shards"],
    )


def stream_items(
    source: ShardSource, shard: str, wanted: dict[str, list[ListedFile]]
) -> Iterator[tuple[str, list[Any]]]:
    """(item id, decoded audio of its `wanted` files in order) for each wanted item of
    `shard`, in shard order, every member checked against its checksum as it arrives.

    The tar is read as an uncompressed stream (what `msaug pack` writes): a member is read
    only if the manifest lists it for a wanted item, and only after its header gives the size
    the manifest does, so a hostile shard cannot make a worker hold more than one file."""
    members = {f.member: f for files in wanted.values() for f in files}
    pending: dict[str, dict[str, bytes]] = {}
    seen: set[str] = set()
    stream = _open_shard(source, shard)
    done = False
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=_READ) as tar:
            for info in tar:
                listed = members.get(info.name)
                if listed is None or not info.isreg():
                    continue  # never read: links, folders, names no wanted row lists
                where = f"{source.where(shard)}: item {listed.item_id}'s {listed.name}"
                if info.name in seen:
                    raise TrainError(f"{where} comes twice; repack the dataset")
                if info.size != listed.bytes:
                    raise TrainError(
                        f"{where} holds {info.size} bytes, the manifest {listed.bytes}: "
                        "damaged or altered; run `msaug verify` on the shards"
                    )
                seen.add(info.name)
                data = tar.extractfile(info).read()  # type: ignore[union-attr]
                if bytes_checksum(data) != listed.checksum:
                    raise TrainError(
                        f"{where} is damaged (checksum differs from the manifest); run "
                        "`msaug verify` on the shards"
                    )
                files = pending.setdefault(listed.item_id, {})
                files[listed.name] = data
                if len(files) == len(wanted[listed.item_id]):
                    del pending[listed.item_id]
                    order = wanted[listed.item_id]
                    yield listed.item_id, [_decode(files[f.name], f) for f in order]
        done = True
    except TrainError:
        raise
    except Exception as exc:  # tarfile, the transport (aiohttp, a pipe) or a cut-off stream
        raise TrainError(
            f"{source.where(shard)} is truncated, damaged or unreachable "
            f"({type(exc).__name__}: {exc}); run `msaug verify` on the shards"
        ) from None
    finally:
        _close(stream, source.where(shard), done)
    missing = sorted(set(members) - seen)
    if missing:
        raise TrainError(
            f"{source.where(shard)} lacks {len(missing)} file(s) its index promises (first: "
            f"{missing[0]}): truncated or altered; run `msaug verify` on the shards"
        )


def _open_shard(source: ShardSource, shard: str) -> IO[bytes]:
    try:
        return source.open(shard)
    except TrainError:
        raise
    except Exception as exc:
        raise TrainError(
            f"cannot open {source.where(shard)} ({type(exc).__name__}: {exc})"
        ) from None


def _close(stream: IO[bytes], where: str, finished: bool) -> None:
    """Close a shard's stream. A stream left early (a worker that has its quota, or an
    error) may report it: a pipe's command then dies of SIGPIPE, which is no error."""
    try:
        stream.close()
    except Exception as exc:
        if finished:
            raise TrainError(f"{where}: the transport failed at the end ({exc})") from None


def _decode(data: bytes, listed: ListedFile) -> Any:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    if (len(audio), rate, audio.shape[1]) != (listed.frames, listed.sample_rate, listed.channels):
        raise TrainError(
            f"item {listed.item_id}'s {listed.name} holds {len(audio)} frames x "
            f"{audio.shape[1]} at {rate} Hz, its row says {listed.frames} x {listed.channels} "
            f"at {listed.sample_rate} Hz; run `msaug verify` on the shards"
        )
    return audio


def shard_of_items(shards: list[dict[str, Any]]) -> dict[str, str]:
    return {item_id: shard["name"] for shard in shards for item_id in shard["items"]}
