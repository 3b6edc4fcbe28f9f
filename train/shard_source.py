"""Where packed shards come from, and their members as they stream in, checked.

`mstrain --data` takes a folder of shards written by `msaug pack`, or a URL of one: anything
fsspec opens (`file://`, `http(s)://`, `s3://` with s3fs, `gs://` with gcsfs, ...), or a
webdataset `pipe:` command with `{name}` where the file name goes (`pipe:aws s3 cp
s3://bucket/ds/{name} -`). The manifest beside the shards (dataset.json, shards.json, the
tables: a few MB) is fetched first into a temporary folder and opened and checked like any
dataset (paths, schema, the tables against dataset.json's checksums and digest); the shards are
then only ever streamed, never stored: local disk holds the manifest and nothing else.

Shards are untrusted. webdataset's tar iterator reads only members the manifest lists for the
items wanted (links, devices and unknown names are never read); each member is hashed as it
arrives and compared with its checksum in the tables, and a member that is missing, repeated,
damaged or cut short is an error naming the shard and the item.
"""

from __future__ import annotations

import io
import json
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fsspec
import soundfile as sf
from webdataset.gopen import gopen
from webdataset.tariterators import tar_file_iterator

from manifests import Dataset, ManifestError
from manifests.checksum import bytes_checksum
from manifests.listing import SHARDS_INDEX, ListedFile
from manifests.pack import read_index
from manifests.paths import check_relative, confined
from manifests.schema import DATASET_JSON
from manifests.tables import listed_table_files
from manifests.verify import manifest_problems
from train.errors import TrainError

PIPE = "pipe:"


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
        """`name` is checked (`manifests.paths`) by whoever read it from the manifest; in a
        pipe command it is also shell-quoted."""
        if self.base.startswith(PIPE):
            return gopen(self.base.replace("{name}", shlex.quote(name)), "rb")
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


def _fetch(source: ShardSource, name: str, folder: Path) -> Path:
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with source.open(name) as stream, open(target, "wb") as out:
            shutil.copyfileobj(stream, out)
    except TrainError:
        raise
    except Exception as exc:  # OSError, or the transport's own (aiohttp, fsspec)
        raise TrainError(
            f"cannot read {source.where(name)} ({type(exc).__name__}: {exc}); is --data the "
            "folder `msaug pack` wrote, or its URL?"
        ) from None
    if target.stat().st_size == 0:  # a pipe whose command failed gives nothing
        raise TrainError(f"{source.where(name)} is empty or could not be fetched")
    return target


def open_shards(data: str) -> ShardedDataset:
    """Fetch and check the manifest beside the shards; no shard is read here."""
    source = ShardSource(data)
    folder = Path(tempfile.mkdtemp(prefix="mstrain-manifest-"))
    try:
        header_path = _fetch(source, DATASET_JSON, folder)
        try:
            header = json.loads(header_path.read_text())
        except (UnicodeDecodeError, ValueError) as exc:
            raise TrainError(f"{source.where(DATASET_JSON)} is not valid JSON ({exc})") from None
        if not isinstance(header, dict):
            raise TrainError(f"{source.where(DATASET_JSON)} is not a dataset header")
        try:
            names = [e["path"] for t in ("items", "stems") for e in listed_table_files(header, t)]
            for name in (SHARDS_INDEX, *names):
                _fetch(source, check_relative(name, DATASET_JSON, {".json", ".parquet"}), folder)
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
    `shard`, in shard order, every member checked against its checksum as it arrives."""
    members = {f.member: f for files in wanted.values() for f in files}
    pending: dict[str, dict[str, bytes]] = {}
    seen: set[str] = set()
    try:
        with source.open(shard) as stream:
            for sample in tar_file_iterator(stream, select_files=members.__contains__):
                name, data = sample["fname"], sample["data"]
                listed = members[name]
                if name in seen:
                    raise TrainError(f"{source.where(shard)} holds {name} twice; repack it")
                seen.add(name)
                if bytes_checksum(data) != listed.checksum:
                    raise TrainError(
                        f"{source.where(shard)}: item {listed.item_id}'s {listed.name} is damaged "
                        "(checksum differs from the manifest); run `msaug verify` on the shards"
                    )
                files = pending.setdefault(listed.item_id, {})
                files[listed.name] = data
                if len(files) == len(wanted[listed.item_id]):
                    del pending[listed.item_id]
                    order = wanted[listed.item_id]
                    yield listed.item_id, [_decode(files[f.name], f) for f in order]
    except TrainError:
        raise
    except Exception as exc:  # tarfile, the transport (aiohttp, a pipe) or a cut-off stream
        raise TrainError(
            f"{source.where(shard)} is truncated, damaged or unreachable "
            f"({type(exc).__name__}: {exc}); run `msaug verify` on the shards"
        ) from None
    missing = sorted(set(members) - seen)
    if missing:
        raise TrainError(
            f"{source.where(shard)} lacks {len(missing)} file(s) its index promises (first: "
            f"{missing[0]}): truncated or altered; run `msaug verify` on the shards"
        )


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
