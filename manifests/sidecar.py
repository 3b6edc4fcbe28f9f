"""The rows of one finished item, kept in its folder until a manifest part lists them.

A render's worker writes an item's audio files, then, last and atomically, `.rows.json` in the
item's folder: the item's exact `ItemRecord` and `StemRecord`s and the fingerprint of the render
that made them (`DatasetWriter.fingerprint`). The parent removes it once the rows are in a part.
When a run stops between the two (killed mid-batch, or a batch whose result never reached the
parent), the next run of the same render proves the folder against it (`proven_rows`) and writes
its rows as a part instead of rendering the item again. The rows cannot be rebuilt from the files
alone: the common scale is computed before quantisation, and effect parameters are drawn.

The file is hidden and not audio, so neither musdb (it reads the five wavs of each folder) nor
`msaug verify` (it reports unlisted audio) sees it. A sidecar is untrusted input: it is believed
only when its fingerprint is the running render's, its ids and paths are exactly the ones its
folder implies, every value has its field's type (ints within int64, floats finite) and every
effect a declared kind, the folder holds exactly those files and nothing else, each a plain file
of the size and checksum the rows give. What only the render knows (the seeds, the drawn values)
is checked by `augment.leftovers`. JSON floats are written as their shortest round-tripping repr,
so folded rows equal the rows the worker returned, bit for bit.
"""

from __future__ import annotations

import json
import math
import numbers
import stat
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from manifests.checksum import file_checksum
from manifests.errors import ManifestError
from manifests.files import atomic_path
from manifests.records import ItemRecord, StemRecord, _Record
from manifests.schema import MIXTURE, item_dir

ROWS_FILE = ".rows.json"
ROWS_FORMAT = "msaug.item-rows/1"
MAX_BYTES = 1 << 20
"""A sidecar holds a few kilobytes; a bigger one is not ours and is not parsed."""
INT64 = (-(1 << 63), (1 << 63) - 1)
"""Every int column is Arrow int64: a value outside it is not one a render writes."""


def rows_path(root: Path, item: ItemRecord) -> Path:
    return root / item_dir(item.subset, item.item_id) / ROWS_FILE


def write_rows(root: Path, fingerprint: str, item: ItemRecord, stems: Sequence[StemRecord]) -> bool:
    """Write `item`'s sidecar atomically; call it after every file of the item is in place.

    Rows that `read_rows` would refuse (a non-finite value) get no sidecar, and False: such an
    item is rendered again if its batch never reaches the manifest, as before sidecars.
    """
    try:
        payload = {
            "format": ROWS_FORMAT,
            "fingerprint": fingerprint,
            "item": _typed(ItemRecord, item.to_dict(), "item").to_dict(),
            "stems": [_typed(StemRecord, s.to_dict(), "stem").to_dict() for s in stems],
        }
    except ManifestError:
        return False
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    with atomic_path(rows_path(root, item)) as temp:
        temp.write_text(text + "\n")
    return True


def drop_rows(folder: Path) -> None:
    """Remove a folder's sidecar, once its rows are in a part (a no-op if there is none)."""
    path = folder / ROWS_FILE
    if path.is_file() and not path.is_symlink():
        path.unlink()


def _refuse(constant: str) -> float:
    raise ValueError(f"{constant} is not a value a render writes")


def read_rows(folder: Path, fingerprint: str) -> tuple[ItemRecord, list[StemRecord]]:
    """The records of `folder`'s sidecar, if it was written by the render `fingerprint`."""
    path = folder / ROWS_FILE
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise ManifestError(f"{folder} has no {ROWS_FILE}: its item never finished") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
        raise ManifestError(f"{path} is not a plain file of at most {MAX_BYTES} bytes")
    try:
        data = json.loads(path.read_bytes(), parse_constant=_refuse)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"{path} is not the JSON a render writes ({exc})") from None
    if not isinstance(data, dict) or set(data) != {"format", "fingerprint", "item", "stems"}:
        raise ManifestError(f"{path} does not hold format, fingerprint, item and stems")
    if data["format"] != ROWS_FORMAT:
        raise ManifestError(f"{path} is format {data['format']!r}, not {ROWS_FORMAT!r}")
    if data["fingerprint"] != fingerprint:
        raise ManifestError(f"{path} was written by another render (other settings or sources)")
    if not isinstance(data["stems"], list):
        raise ManifestError(f"{path}: stems is not a list")
    item = _typed(ItemRecord, data["item"], str(path))
    return item, [_typed(StemRecord, s, str(path)) for s in data["stems"]]


def proven_rows(
    root: Path,
    folder: Path,
    fingerprint: str,
    stem_names: Collection[str],
    extension: str,
    effect_kinds: Collection[str],
) -> tuple[ItemRecord, list[StemRecord]]:
    """`folder`'s rows when its sidecar proves it a finished item of the render `fingerprint`;
    ManifestError naming the first thing that does not hold otherwise, or OSError when a file
    vanished or cannot be read (the caller treats both as not proven). Every effect's kind
    must be one of `effect_kinds` (the dataset's declared effect columns).

    Nothing the sidecar says about paths is followed: the paths it must give are computed from
    the folder's own place (`<subset>/<item_id>/<name>.<extension>`), and only those are read.
    """
    if folder.is_symlink() or not folder.is_dir():
        raise ManifestError(f"{folder} is not a folder (a link, or a file)")
    relative = PurePosixPath(folder.relative_to(root).as_posix())
    item, stems = read_rows(folder, fingerprint)
    undeclared = {e["kind"] for s in stems for e in s.effects} - set(effect_kinds)
    if undeclared:
        raise ManifestError(f"{folder}: its sidecar names undeclared effects {sorted(undeclared)}")
    expected = {
        MIXTURE: str(relative / f"{MIXTURE}.{extension}"),
        **{name: str(relative / f"{name}.{extension}") for name in stem_names},
    }
    given = {MIXTURE: item.mixture_path, **{s.stem: s.path for s in stems}}
    if item.item_id != folder.name or any(s.item_id != folder.name for s in stems):
        raise ManifestError(f"{folder}: its sidecar names another item ({item.item_id!r})")
    if str(item_dir(item.subset, item.item_id)) != str(relative):
        raise ManifestError(f"{folder}: its sidecar puts the item in subset {item.subset!r}")
    if len(stems) != len(stem_names) or given != expected:
        raise ManifestError(f"{folder}: its sidecar's files are not {sorted(expected.values())}")
    sizes = {MIXTURE: (item.bytes, item.checksum), **{s.stem: (s.bytes, s.checksum) for s in stems}}
    found = {p.name for p in folder.iterdir()}
    wanted = {PurePosixPath(p).name for p in expected.values()} | {ROWS_FILE}
    if found != wanted:
        raise ManifestError(f"{folder} holds {sorted(found ^ wanted)} beyond or short of its rows")
    for name, relative_path in expected.items():
        path = root / relative_path
        size, checksum = sizes[name]
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            raise ManifestError(f"{path} is not a plain file of {size} bytes, as its rows say")
        if file_checksum(path) != checksum:
            raise ManifestError(f"{path} does not have the checksum its rows give")
    return item, stems


def _typed(record: type[_Record], data: Any, where: str) -> Any:
    """`record` from a dict with exactly its fields, each of its declared type (ints stay ints,
    numbers become floats, effect chains `[{kind, params: {name: float}}]` in their order)."""
    hints = record.field_types()
    if not isinstance(data, Mapping) or set(data) != set(hints):
        keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ManifestError(f"{where}: {record.table} row has {keys}, not {sorted(hints)}")
    values = {}
    for name, hint in hints.items():
        value = data[name]
        if hint is str and isinstance(value, str):
            values[name] = value
        elif hint is int and _int64(value):
            values[name] = int(value)
        elif hint is float and _finite(value):
            values[name] = float(value)
        elif hint not in (str, int, float):
            values[name] = _chain(value, where)
        else:
            raise ManifestError(f"{where}: {record.table} {name} = {value!r} is not a {hint}")
    return record(**values)


def _int64(value: Any) -> bool:
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and INT64[0] <= int(value) <= INT64[1]
    )


def _finite(value: Any) -> bool:
    """A real number that is a finite float (JSON's integer 10**400 is a real number that no
    float holds: refused, not an OverflowError)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _chain(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ManifestError(f"{where}: effects is not a list")
    chain = []
    for entry in value:
        if (
            not isinstance(entry, Mapping)
            or set(entry) != {"kind", "params"}
            or not isinstance(entry["kind"], str)
            or not isinstance(entry["params"], Mapping)
            or not all(isinstance(k, str) and _finite(v) for k, v in entry["params"].items())
        ):
            raise ManifestError(f"{where}: effect {entry!r} is not {{kind, params}}")
        params = {k: float(v) for k, v in entry["params"].items()}
        chain.append({"kind": entry["kind"], "params": params})
    return chain
