"""Checking a dataset copy against its manifest (`msaug verify`).

A dataset is copied to GPU boxes, shared and sliced; a file lost or damaged on the way would
otherwise surface hours into training, or never, as a silently worse model. Verification
compares every listed file with what the manifest says it holds: size (`--quick`), then
checksum and decoded audio shape. It also reports audio the manifest does not list, since a
stray file in a MUSDB-layout folder changes what `musdb.DB` reads. A shard folder from
`msaug pack` is checked member by member against the same manifest.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf
from joblib import Parallel, delayed
from tqdm import tqdm

from manifests.checksum import CHECKSUM_ALGO, bytes_checksum, file_checksum
from manifests.dataset import Dataset
from manifests.errors import ManifestError
from manifests.listing import (
    SHARDS_INDEX,
    ListedFile,
    audio_files,
    is_packed,
    sample_files,
    sample_jsons,
)
from manifests.pack import iter_members, read_index
from manifests.paths import confined
from manifests.schema import DATASET_JSON, PARTS_DIR, SCHEMA_VERSION, TABLES, table_dir
from manifests.tables import content_digest, listed_table_files, with_effect_columns

PROBLEM_KINDS = (
    "missing",
    "truncated",
    "altered",
    "unreadable",
    "shape",
    "unlisted",
    "unsafe",
    "manifest",
    "digest",
)
WATCHED_SUFFIXES = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".mp4", ".aif", ".aiff", ".tar"}
)
"""Files with these suffixes that the manifest does not list are reported as unlisted."""


@dataclass(frozen=True)
class Problem:
    kind: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:<10} {self.path}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    root: Path
    form: str
    """'folder' (the render layout) or 'shards' (from `msaug pack`)."""
    quick: bool
    files: int
    problems: tuple[Problem, ...]
    schema_version: int = SCHEMA_VERSION
    digest: str | None = None
    """The digest dataset.json records (None for schema 1, which has none)."""
    expected: str | None = None
    """The digest the user expects (`--expect`, the one its publisher posted), if any."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        counted = Counter(problem.kind for problem in self.problems)
        return {kind: counted[kind] for kind in PROBLEM_KINDS if counted[kind]}

    def summary(self) -> str:
        checked = "existence and sizes" if self.quick else "sizes, checksums and audio shapes"
        if self.digest is None:
            tables = (
                f"manifest schema {self.schema_version}: no digest, so the tables themselves "
                "are unchecked (`msaug migrate` adds one)"
            )
        else:
            tables = f"manifest schema {self.schema_version}, digest {self.digest}"
        if self.expected is None:
            tables += (
                "; this proves internal consistency only: compare the digest with the one its "
                "publisher posted (`--expect DIGEST`)"
            )
        elif self.ok:
            tables += ", the digest expected: this is the dataset that digest was posted for"
        if self.ok:
            return (
                f"OK: {self.files} files of {self.root} ({self.form}) match the manifest: "
                f"{checked}; {tables}"
            )
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts().items())
        return (
            f"FAILED: {len(self.problems)} problems in {self.files} files of {self.root} "
            f"({self.form}; {counts}); checked {checked}; {tables}"
        )


def check_content(listed: ListedFile, data: bytes, where: str) -> list[Problem]:
    """Checksum, then (for audio) decode and compare frames, channels and rate with the rows."""
    if len(data) != listed.bytes:
        return [Problem("truncated", where, f"{len(data)} bytes, manifest says {listed.bytes}")]
    checksum = bytes_checksum(data)
    if checksum != listed.checksum:
        return [
            Problem(
                "altered", where, f"{CHECKSUM_ALGO} {checksum}, manifest says {listed.checksum}"
            )
        ]
    if listed.frames is None:
        return []
    try:
        # Every frame is decoded, so a damaged FLAC frame fails here; int16 output skips the
        # float conversion (values are not needed), which would cost 10x the checksum.
        audio, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    except sf.SoundFileError as exc:
        return [Problem("unreadable", where, str(exc))]
    found = (audio.shape[0], audio.shape[1], rate)
    wanted = (listed.frames, listed.channels, listed.sample_rate)
    if found != wanted:
        return [
            Problem(
                "shape",
                where,
                "holds {} frames x {} channels at {} Hz, manifest says {} x {} at {} Hz".format(
                    *found, *wanted
                ),
            )
        ]
    return []


def _check_file(root: str, listed: ListedFile, quick: bool) -> list[Problem]:
    try:
        path = confined(Path(root), listed.path)
    except ManifestError as exc:
        return [Problem("unsafe", listed.path, str(exc))]
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return [Problem("missing", listed.path, "listed in the manifest, not on disk")]
    if size != listed.bytes:
        return [Problem("truncated", listed.path, f"{size} bytes, manifest says {listed.bytes}")]
    if quick:
        return []
    with open(path, "rb") as handle:
        return check_content(listed, handle.read(), listed.path)


def _check_shard(
    root: str, shard: dict[str, Any], expected: dict[str, ListedFile], quick: bool
) -> list[Problem]:
    """One shard's members against the manifest rows of the items the index puts in it."""
    name = shard["name"]
    try:
        path = confined(Path(root), name)
    except ManifestError as exc:
        return [Problem("unsafe", name, str(exc))]
    if not path.is_file():
        return [Problem("missing", name, f"in {SHARDS_INDEX} with {len(shard['items'])} items")]
    problems = []
    size = path.stat().st_size
    if size != shard["bytes"]:
        problems.append(
            Problem("truncated", name, f"{size} bytes, {SHARDS_INDEX} says {shard['bytes']}")
        )
    unseen = dict(expected)
    try:
        for member, member_size, data in iter_members(path, read=not quick):
            where = f"{name}:{member}"
            listed = unseen.pop(member, None)
            if listed is None:
                problems.append(Problem("unlisted", where, "member not in the manifest"))
            elif data is not None:
                problems += check_content(listed, data, where)
            elif member_size != listed.bytes:
                problems.append(
                    Problem(
                        "truncated", where, f"{member_size} bytes, manifest says {listed.bytes}"
                    )
                )
    except (OSError, EOFError, tarfile.TarError) as exc:
        problems.append(Problem("unreadable", name, f"tar read failed ({exc})"))
    except ManifestError as exc:  # a link, device or duplicate member
        problems.append(Problem("unsafe", name, str(exc)))
    problems += [
        Problem("missing", f"{name}:{m}", "listed in the manifest, not in the shard")
        for m in unseen
    ]
    return problems


def manifest_problems(dataset: Dataset) -> list[Problem]:
    """Consistency of the tables with each other and with dataset.json."""
    problems = []
    declared = dataset.header.get("n_items")
    if declared != len(dataset):
        problems.append(
            Problem(
                "manifest",
                DATASET_JSON,
                f"n_items is {declared}, the tables hold {len(dataset)} items",
            )
        )
    parts = dataset.root / PARTS_DIR
    if parts.is_dir() and any(p.is_file() for p in parts.rglob("*")):
        problems.append(
            Problem(
                "manifest", PARTS_DIR, "holds unfolded batches: the render did not finish; rerun it"
            )
        )
    orphans = sorted(set(dataset.stems["item_id"]) - set(dataset.items["item_id"]))
    if orphans:
        problems.append(
            Problem("manifest", "stems", f"stem rows of items not in the items table: {orphans}")
        )
    expected = sorted(dataset.stem_names)
    stems_of = dataset.stems.groupby("item_id")["stem"].apply(sorted)
    for item_id in dataset.items["item_id"]:
        found = stems_of.get(item_id, [])
        if found != expected:
            problems.append(
                Problem(
                    "manifest",
                    "items",
                    f"item {item_id} has stem rows {found}, expected {expected}",
                )
            )
    if dataset.schema_version == SCHEMA_VERSION:
        problems += _table_problems(dataset)
    return problems


def _table_problems(dataset: Dataset) -> list[Problem]:
    """Table files against their listing, the digest against the content, and the typed
    effect columns against the chains they are derived from."""
    problems = []
    listed = set()
    for table in TABLES:
        for entry in listed_table_files(dataset.header, table):
            listed.add(entry["path"])
            path = dataset.path(entry["path"])
            if path.stat().st_size != entry.get("bytes") or file_checksum(path) != entry.get(
                "checksum"
            ):
                problems.append(
                    Problem(
                        "manifest",
                        entry["path"],
                        f"differs from its size and checksum in {DATASET_JSON}",
                    )
                )
        folder = dataset.root / table_dir(table)
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            relative = path.relative_to(dataset.root).as_posix()
            if relative not in listed and not path.name.startswith("."):
                problems.append(
                    Problem(
                        "unlisted", relative, f"in the {table} table folder, not in {DATASET_JSON}"
                    )
                )
    digest = content_digest(dataset.header, dataset.items, dataset.stems)
    if digest != dataset.header.get("digest"):
        problems.append(
            Problem(
                "manifest",
                DATASET_JSON,
                f"digest is {dataset.header.get('digest')}, the content gives {digest}: a row, "
                "the identity or a declaration was edited",
            )
        )
    derived = dataset.derived_columns
    recomputed = with_effect_columns(dataset.stems, dataset.header["effect_columns"])[derived]
    stored = dataset.stems[derived]
    differs = ~((recomputed == stored) | (recomputed.isna() & stored.isna())).all(axis=1)
    if differs.any():
        first = dataset.stems.loc[differs.idxmax(), ["item_id", "stem"]].tolist()
        problems.append(
            Problem(
                "manifest",
                "stems",
                f"typed effect columns disagree with `effects` in {int(differs.sum())} rows "
                f"(first: item {first[0]} {first[1]})",
            )
        )
    return problems


def _unlisted(root: Path, known: set[str]) -> list[Problem]:
    problems = []
    for folder, _, names in os.walk(root):
        for name in names:
            relative = (Path(folder) / name).relative_to(root).as_posix()
            if Path(name).suffix.lower() in WATCHED_SUFFIXES and relative not in known:
                problems.append(Problem("unlisted", relative, "on disk, not in the manifest"))
    return problems


def _run(
    check: Callable[..., list[Problem]],
    tasks: Sequence[tuple],
    jobs: int,
    progress: bool,
    unit: str,
) -> list[Problem]:
    results = Parallel(n_jobs=jobs, return_as="generator")(delayed(check)(*task) for task in tasks)
    bar = tqdm(
        results, total=len(tasks), unit=unit, desc="verify", disable=None if progress else True
    )
    return [problem for problems in bar for problem in problems]


def verify(
    root: str | Path,
    quick: bool = False,
    jobs: int = 1,
    progress: bool = False,
    expect: str | None = None,
) -> VerifyReport:
    """Check every file the manifest at `root` lists; a folder or a shard folder.

    With `expect` (a digest posted by the dataset's publisher, like a release's sha256) the
    recorded digest must equal it; the other checks tie that digest to every row and file.
    """
    root = Path(root)
    dataset = Dataset.open(root)
    algo = dataset.header.get("checksum_algo")
    if algo != CHECKSUM_ALGO:
        raise ManifestError(
            f"{root} lists {algo} checksums; this msaug verifies {CHECKSUM_ALGO}: upgrade msaug"
        )
    problems = manifest_problems(dataset)
    if is_packed(root):
        form = "shards"
        samples = sample_files(dataset, sample_jsons(dataset))
        index = read_index(root)
        packed = {item_id for shard in index["shards"] for item_id in shard["items"]}
        tasks = [
            (
                str(root),
                shard,
                {f.member: f for i in shard["items"] for f in samples.get(i, [])},
                quick,
            )
            for shard in index["shards"]
        ]
        problems += _run(_check_shard, tasks, jobs, progress, "shard")
        problems += [
            Problem("missing", f.member, "listed in the manifest, in no shard")
            for item_id, files in samples.items()
            if item_id not in packed
            for f in files
        ]
        n_files = sum(len(files) for files in samples.values())
        known = {shard["name"] for shard in index["shards"]}
    else:
        form = "folder"
        listed = [f for files in audio_files(dataset).values() for f in files]
        problems += _run(
            _check_file, [(str(root), f, quick) for f in listed], jobs, progress, "file"
        )
        n_files = len(listed)
        known = {f.path for f in listed}
    problems += _unlisted(root, known)
    digest = dataset.header.get("digest") if dataset.schema_version == SCHEMA_VERSION else None
    if expect is not None and digest != expect:
        detail = (
            f"is {digest}, expected {expect}: this is not the dataset that digest was posted for"
            if digest
            else f"schema {dataset.schema_version} records none to compare with {expect}"
        )
        problems.append(Problem("digest", DATASET_JSON, detail))
    ordered = tuple(sorted(problems, key=lambda p: (p.path, PROBLEM_KINDS.index(p.kind))))
    return VerifyReport(root, form, quick, n_files, ordered, dataset.schema_version, digest, expect)
