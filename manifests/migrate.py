"""`msaug migrate`: rewrite an older-schema dataset in place as the current schema.

The new tables are written next to the old ones, then dataset.json is replaced (atomically):
until that rename the folder is the old dataset, after it the new one. The old table files are
deleted last; a run interrupted before that finishes them on the next run. Audio is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from manifests import schema_v1
from manifests.dataset import Dataset, read_header
from manifests.errors import ManifestError
from manifests.listing import is_packed
from manifests.schema import SCHEMA_VERSION
from manifests.tables import write_tables


@dataclass(frozen=True)
class Migrated:
    root: Path
    from_version: int
    digest: str


def _remove_old_tables(root: Path) -> None:
    for relative in (schema_v1.ITEMS_FILE, schema_v1.STEMS_FILE):
        (root / relative).unlink(missing_ok=True)


def migrate(root: str | Path) -> Migrated:
    root = Path(root)
    header = read_header(root)
    if is_packed(root):
        raise ManifestError(
            f"{root} is a packed dataset: its shards hold schema-{header['schema_version']} "
            f"json members; run `msaug unpack`, `msaug migrate` on the folder, then `msaug pack`"
        )
    if header["schema_version"] == SCHEMA_VERSION:
        _remove_old_tables(root)  # left by a run stopped after its header rename
        return Migrated(root, SCHEMA_VERSION, Dataset.open(root).header["digest"])
    dataset = Dataset.open(root)
    written = write_tables(root, dict(dataset.header), dataset.items, dataset.stems)
    _remove_old_tables(root)
    return Migrated(root, dataset.schema_version, written["digest"])
