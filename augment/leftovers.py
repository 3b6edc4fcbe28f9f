"""Item folders that no manifest part lists: folded in when proven finished, else removed.

A run stopped mid-batch (SIGKILL, a crash, Ctrl-C while workers were busy) leaves item folders
whose rows never reached a part: complete ones, each with its sidecar (`manifests.sidecar`,
written last by the worker), and incomplete ones. The next run of the same render, and the
interrupted run itself once its workers are down, checks each such folder: a complete one whose
sidecar proves it (this render's fingerprint, its own id and index, every file's size and
checksum) is written as a part and counts as done; anything else (no sidecar, a mismatch, a
missing or extra file, a link) is removed and its item rendered again, byte for byte. An item
beyond a smaller `--n` is folded too: nothing finished is thrown away.

Only folders named like rendered items (`0000042`) are looked at; validation songs (named after
songs, even one named with digits) and anything else a user put in `train/` stay untouched.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from augment.item import SUBSET, item_id
from augment.settings import RenderSettings
from manifests import DatasetWriter, ItemRecord, ManifestError, StemRecord
from manifests.sidecar import drop_rows, proven_rows

ITEM_FOLDER = re.compile(r"\d{7,}")
FOLDED_PART = "folded-"
"""Parts of folded items are named `folded-<first item id>`, apart from batch parts."""


@dataclass
class Settled:
    folded: list[str] = field(default_factory=list)
    """Ids of finished items whose rows were written as a part (not rendered again)."""
    removed: int = 0
    """Folders removed because nothing proved them finished (they are rendered again)."""


@dataclass(frozen=True)
class Leftovers:
    """How a render tells its own finished items from everything else in `train/`."""

    settings: RenderSettings
    wanted: frozenset[str] | None = None
    """Item ids that may be folded (a rebuild: its recipe's items); None: any of this render."""

    def settle(self, writer: DatasetWriter, listed: Collection[str]) -> Settled:
        """Fold or remove every item folder not in `listed`; drop the sidecars of listed ones.
        Only while no worker of this render can write (before it starts, after it stopped)."""
        folder = writer.root / SUBSET
        settled = Settled()
        rows: list[tuple[ItemRecord, list[StemRecord]]] = []
        keep = set(self.settings.valid_tracks)
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.name in keep or not ITEM_FOLDER.fullmatch(path.name):
                continue
            if path.name in listed:
                if path.is_dir() and not path.is_symlink():
                    drop_rows(path)  # its part was written; the run stopped before this
                continue
            if path.is_symlink():  # a worker would write through it: never ours
                path.unlink()
                settled.removed += 1
            elif path.is_dir():
                proven = self._proven(writer, path)
                if proven is None:
                    shutil.rmtree(path)
                    settled.removed += 1
                else:
                    rows.append(proven)
        if rows:
            writer.write_part(
                FOLDED_PART + rows[0][0].item_id,
                [item for item, _ in rows],
                [stem for _, stems in rows for stem in stems],
            )
            for item, _ in rows:
                drop_rows(folder / item.item_id)
                settled.folded.append(item.item_id)
        return settled

    def _proven(self, writer: DatasetWriter, path: Path) -> tuple[ItemRecord, list] | None:
        """The folder's rows if its sidecar proves it a finished item of this render."""
        try:
            item, stems = proven_rows(
                writer.root, path, writer.fingerprint, writer.stem_names, self.settings.format
            )
        except ManifestError:
            return None
        if (
            item.role != "train"
            or item_id(item.item_index) != path.name
            or item.run_seed != self.settings.seed
            or (item.sample_rate, item.num_frames)
            != (self.settings.sample_rate, self.settings.frames)
            or (self.wanted is not None and item.item_id not in self.wanted)
        ):
            return None
        return item, stems
