"""Item folders that no manifest part lists: folded in when proven finished, else removed.

A run stopped mid-batch (SIGKILL, a crash, Ctrl-C while workers were busy) leaves item folders
whose rows never reached a part: complete ones, each with its sidecar (`manifests.sidecar`,
written last by the worker), and incomplete ones. The next run of the same render, and the
interrupted run itself once its workers are down, checks each such folder: a complete one whose
sidecar proves it (this render's fingerprint, its own id and index, every file's size, checksum
and header, and every drawn value the item's seed or its recipe row fixes) is written as a part
and counts as done; anything else (no sidecar, a mismatch, a missing or extra file, a link, a
file named like an item) is removed and its item rendered again, byte for byte. An item beyond
a smaller `--n` is folded too: nothing finished is thrown away.

Only entries named like rendered items (`0000042`, ASCII digits) are looked at; validation songs
(named after songs, even one named with digits) and anything else a user put in `train/` stay
untouched. `train/` itself must be a real folder: a link would lead the walk, and the workers,
out of the dataset, so such a dataset is refused.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import soundfile as sf

from augment.config import RenderConfig
from augment.effects import Effect, as_rendered_by
from augment.item import SUBSET, item_id
from augment.plan import drafted, item_seed
from augment.settings import RenderSettings
from manifests import DatasetWriter, ItemRecord, ManifestError, StemRecord
from manifests.paths import check_real_folder
from manifests.schema import MIXTURE
from manifests.sidecar import drop_rows, proven_rows

ITEM_FOLDER = re.compile(r"[0-9]{7,}")
"""A rendered item's name: ASCII digits only (`\\d` would take `١٢٣٤٥٦٧`, a user's folder)."""
FOLDED_PART = "folded-"
"""Parts of folded items are named `folded-<first item id>`, apart from batch parts."""
NOT_PROVEN = (
    ManifestError,
    OSError,
    RuntimeError,  # soundfile's errors; pyarrow's ArrowNotImplementedError
    ValueError,  # pyarrow's ArrowInvalid; an effect out of range
    TypeError,
    LookupError,
    ArithmeticError,  # OverflowError
    pa.ArrowException,
)
"""What checking a leftover may raise: each means "not proven" (removed, rendered again), never
a crash, so a hostile sidecar cannot stop every rerun of the render."""


@dataclass
class Settled:
    folded: list[str] = field(default_factory=list)
    """Ids of finished items whose rows were written as a part (not rendered again)."""
    removed: int = 0
    """Folders removed because nothing proved them finished (they are rendered again)."""


@dataclass(frozen=True)
class Drawn:
    """`msaug render`: items drawn from (run seed, index). What an item's rows must agree
    with before any audio is read: its seed, mode, each stem's gain and effect kinds and drawn
    values (`plan.drafted`), and sources among the render's tracks."""

    config: RenderConfig
    weights: Mapping[str, float]
    channels: Mapping[tuple[str, str], int]
    """(subset, name) -> channels of every track the render draws from."""

    def problem(self, seed: int, item: ItemRecord, stems: Sequence[StemRecord]) -> str | None:
        if item.run_seed != seed or item.item_seed != item_seed(seed, item.item_index):
            return "its seeds are not the ones the run seed and its index give"
        draft = drafted(seed, item.item_index, dict(self.weights), self.config)
        if item.mode != draft.mode:
            return f"its mode {item.mode!r} is not the one its seed draws"
        for stem in stems:
            drawn = draft.effects[stem.stem]
            if self.channels.get((stem.source_subset, stem.source_track)) != item.channels:
                return f"{stem.stem} reads a song this render does not draw from"
            if stem.gain_db != draft.gains[stem.stem]:
                return f"{stem.stem}'s gain is not the one its seed draws"
            if [e["kind"] for e in stem.effects] != [kind for kind, _ in drawn]:
                return f"{stem.stem}'s effects are not the ones its seed draws"
            for entry, (_, values) in zip(stem.effects, drawn, strict=True):
                params = entry["params"]  # drawn values; others (a threshold) come from audio
                if any(k in params and params[k] != float(v) for k, v in values.items()):
                    return f"{stem.stem}'s {entry['kind']} is not the one its seed draws"
        return None


@dataclass(frozen=True)
class Replayed:
    """`msaug render --recipe`: items replayed from the recipe's rows; an item's rows must
    be what the replay of its recipe row writes (all but what the audio decides)."""

    rows: Mapping[str, tuple[ItemRecord, Mapping[str, StemRecord]]]
    """The recipe's rendered items: id -> (item row, stem -> stem row)."""
    draw_scheme: int

    def problem(self, sr: int, item: ItemRecord, stems: Sequence[StemRecord]) -> str | None:
        if item.item_id not in self.rows:
            return "the recipe has no such item"
        row, stem_rows = self.rows[item.item_id]
        fields = ("item_index", "run_seed", "item_seed", "mode", "attempts")
        if any(getattr(item, f) != getattr(row, f) for f in fields):
            return "its seeds, mode or attempts are not the recipe's"
        for stem in stems:
            want = stem_rows[stem.stem]
            replayed = (  # as `plan.replay_item` and `item.render_item` make them
                want.source_subset,
                want.source_track,
                round(want.offset_seconds * sr) / sr,
                round(want.duration_seconds * sr) / sr,
                want.gain_db,
                [
                    as_rendered_by(Effect.from_dict(d), self.draw_scheme).to_dict()
                    for d in want.effects
                ],
            )
            got = (
                stem.source_subset,
                stem.source_track,
                stem.offset_seconds,
                stem.duration_seconds,
                stem.gain_db,
                stem.effects,
            )
            if got != replayed:
                return f"{stem.stem} is not what its recipe row replays"
        return None


@dataclass(frozen=True)
class Leftovers:
    """How a render tells its own finished items from everything else in `train/`."""

    settings: RenderSettings
    expected: Drawn | Replayed
    """What the rows of an item of this render must agree with beyond the sidecar's own proof."""

    def settle(self, writer: DatasetWriter, listed: Collection[str]) -> Settled:
        """Fold or remove every item folder not in `listed`; drop the sidecars of listed ones.
        Only while no worker of this render can write (before it starts, after it stopped).
        ManifestError when `train/` is a link or a file: nothing is read or written through it."""
        folder = writer.root / SUBSET
        check_real_folder(folder, "where rendered items go")
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
            if path.is_symlink() or not path.is_dir():  # a worker would write through it, or
                path.unlink()  # fail to make the folder: named like an item, and not one
                settled.removed += 1
                continue
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
        """The folder's rows if its sidecar proves it a finished item of this render, and the
        rows are ones a part can hold (converted as `write_part` converts them)."""
        try:
            item, stems = proven_rows(
                writer.root,
                path,
                writer.fingerprint,
                writer.stem_names,
                self.settings.format,
                writer.effect_columns,
            )
            if path.name != item_id(item.item_index) or self._problem(path, item, stems):
                return None
            writer.part_tables([item], stems)
        except NOT_PROVEN:
            return None
        return item, stems

    def _problem(self, path: Path, item: ItemRecord, stems: list[StemRecord]) -> str | None:
        """Why `item`'s rows are not ones this render writes, or None."""
        settings = self.settings
        made = (item.role, item.origin, item.seconds, item.sample_rate, item.num_frames)
        if made != ("train", "", settings.seconds, settings.sample_rate, settings.frames):
            return "its role, length or sample rate is not this render's"
        if item.attempts < 1:
            return "it was drawn in no attempt"
        for name in (MIXTURE, *(s.stem for s in stems)):
            info = sf.info(str(path / f"{name}.{settings.format}"))
            header = (info.samplerate, info.frames, info.channels, info.format, info.subtype)
            declared = (item.sample_rate, item.num_frames, item.channels)
            if header != (*declared, settings.format.upper(), settings.subtype):
                return f"{name}'s header is not what its rows and this render say"
        for stem in stems:
            for entry in stem.effects:  # a registered effect, exactly its parameters, in range
                if Effect.from_dict(entry).to_dict() != entry:
                    return f"{stem.stem}'s {entry['kind']} is not an effect a render writes"
        if isinstance(self.expected, Drawn):
            return self.expected.problem(settings.seed, item, stems)
        return self.expected.problem(settings.sample_rate, item, stems)
