"""Recipes: a dataset's manifest without its audio, enough to rebuild it byte for byte.

MUSDB18's licence limits who may receive audio derived from it, and a large render is hundreds
of gigabytes; its manifest is a few megabytes and already holds every item's provenance. A
recipe (`msaug recipe DATASET --out RECIPE`) is dataset.json and the tables, copied unchanged,
plus `recipe.json`: what the rebuild needs to match (the source files by relative name, size
and content checksum; the builds that shape the audio) and the digest it must end with.
`msaug render --recipe` (`augment.rebuild`) replays every row on the user's own sources.

A recipe from elsewhere is untrusted: it opens through `manifests.Dataset` (the same path and
field checks as any dataset), its tables must match their digest, and every name it would
read a source file by is checked before it is joined to the user's root.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augment.errors import ConfigError
from augment.identity import settings_from_identity
from augment.item import item_id
from augment.settings import RenderSettings, check_settings
from manifests import Dataset, ManifestError
from manifests.derive import new_folder, place_file
from manifests.paths import check_name, check_relative
from manifests.schema import DATASET_JSON, SCHEMA_VERSION
from manifests.verify import manifest_problems
from manifests.writer import now, package_version

RECIPE_JSON = "recipe.json"
RECIPE_FORMAT = "msaug-recipe"
RECIPE_VERSION = 1
_CHECKSUM = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Recipe:
    """An opened recipe (or any render's manifest): the dataset's rows and what they need."""

    dataset: Dataset
    info: dict[str, Any]

    @property
    def identity(self) -> dict[str, Any]:
        return self.dataset.header["identity"]

    @property
    def digest(self) -> str:
        return self.dataset.header["digest"]

    def settings(self, root: str | Path) -> RenderSettings:
        settings = settings_from_identity(self.identity, str(root))
        check_settings(settings)  # format and subtype reach file names: only the allowed values
        return settings

    @property
    def source_files(self) -> dict[str, dict[str, Any]]:
        """Relative name -> {bytes, checksum} of every source file the rendered items read."""
        return self.identity["sources"]["files"]

    @classmethod
    def open(cls, root: str | Path) -> Recipe:
        root = Path(root)
        info = _read_info(root)
        dataset = Dataset.open(root)
        check_rebuildable(dataset, f"recipe {root}")
        if info["digest"] != dataset.header.get("digest"):
            raise ManifestError(
                f"{root}/{RECIPE_JSON} names digest {info['digest']} but its {DATASET_JSON} "
                f"records {dataset.header.get('digest')}: the recipe was altered; ask its "
                "publisher for a fresh copy"
            )
        return cls(dataset, info)


def _read_info(root: Path) -> dict[str, Any]:
    path = root / RECIPE_JSON
    if not path.is_file():
        raise ManifestError(
            f"{root} is not a recipe (no {RECIPE_JSON}); `msaug recipe DATASET --out RECIPE` "
            "writes one"
        )
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}); the recipe is damaged") from None
    if not isinstance(info, dict) or info.get("format") != RECIPE_FORMAT:
        raise ManifestError(f"{path} is not an msaug recipe (format {RECIPE_FORMAT!r})")
    if info.get("version") != RECIPE_VERSION:
        raise ManifestError(
            f"{path} is recipe version {info.get('version')!r}; this msaug reads version "
            f"{RECIPE_VERSION}: upgrade msaug"
        )
    if not isinstance(info.get("digest"), str):
        raise ManifestError(f"{path} names no digest; the recipe is damaged")
    return info


def check_rebuildable(dataset: Dataset, what: str) -> None:
    """Refuse what a replay of the rows could not rebuild, or a table that does not match its
    digest: a merge of different renders, a schema-1 dataset, or renamed items."""
    header = dataset.header
    if dataset.schema_version != SCHEMA_VERSION:
        raise ManifestError(
            f"{what} is schema {dataset.schema_version}, which records no digest to rebuild "
            "against; `msaug select OLD --out NEW` writes a schema-2 copy first"
        )
    identity = header.get("identity")
    if not isinstance(identity, dict) or "merge" in identity:
        raise ManifestError(
            f"{what} merges different renders, whose rows do not say which render made them; "
            "write a recipe of each render instead"
        )
    if "seconds" not in identity.get("settings", {}):
        raise ManifestError(f"{what} was not written by msaug render; it has no recipe")
    problems = manifest_problems(dataset)
    if problems:
        raise ManifestError(
            f"{what}: {problems[0].path}: {problems[0].detail}; its tables cannot be trusted"
        )
    _check_sources(identity.get("sources"), what)
    valid = identity["settings"].get("valid_tracks", [])
    if not isinstance(valid, list):
        raise ManifestError(f"{what}: identity.settings.valid_tracks must be a list of songs")
    for name in valid:
        check_name(name, f"{what} valid_tracks")
    for row in dataset.items[["item_id", "item_index", "role"]].itertuples(index=False):
        if row.role == "train" and row.item_id != item_id(int(row.item_index)):
            raise ManifestError(
                f"{what}: item {row.item_id!r} was renamed from index {row.item_index} by a "
                "merge; a recipe needs items under their rendered names"
            )
    for row in dataset.stems[["source_subset", "source_track"]].drop_duplicates().itertuples():
        check_name(row.source_subset, f"{what} source_subset")
        check_name(row.source_track, f"{what} source_track")


def _check_sources(sources: Any, what: str) -> None:
    files = sources.get("files") if isinstance(sources, dict) else None
    frames = sources.get("frames") if isinstance(sources, dict) else None
    if not isinstance(files, dict) or not isinstance(frames, dict):
        raise ManifestError(
            f"{what}: identity.sources must map file names to checksums and tracks to frames"
        )
    for key in frames:
        subset, _, track = str(key).partition("/")
        check_name(subset, f"{what} identity.sources.frames {key!r}")
        check_name(track, f"{what} identity.sources.frames {key!r}")
    for name, entry in files.items():
        check_relative(name, f"{what} source file {name!r}", (".wav", ".mp4"))
        ok = isinstance(entry, dict) and isinstance(entry.get("bytes"), int)
        if not ok or not _CHECKSUM.fullmatch(str(entry.get("checksum"))):
            raise ManifestError(f"{what}: source file {name!r} needs bytes and an xxh3 checksum")


def write_recipe(dataset_root: str | Path, out: str | Path, command: str = "") -> Recipe:
    """Copy DATASET's header and tables to `out` with a recipe.json; no audio is read."""
    dataset = Dataset.open(dataset_root)
    check_rebuildable(dataset, str(dataset.root))
    identity = dataset.header["identity"]
    valid = dataset.items[dataset.items["role"] == "valid"]
    files = identity["sources"]["files"]
    info = {
        "format": RECIPE_FORMAT,
        "version": RECIPE_VERSION,
        "digest": dataset.header["digest"],
        "n_items": len(dataset) - len(valid),
        "valid_songs": sorted(valid["item_id"]),
        "sources": {
            "n_files": len(files),
            "bytes": sum(entry["bytes"] for entry in files.values()),
            "digest": identity["sources"].get("digest"),
            "form": "stem" if any(n.endswith(".mp4") for n in files) else "wav",
        },
        "libraries": identity.get("libraries", {}),
        "draw_scheme": identity.get("draw_scheme"),
        "made_with": f"msaug {package_version('msaug')}",
        "created": now(),
        "rebuild": "msaug render --recipe RECIPE --root YOUR_SOURCES --out DATASET",
    }
    if command:
        info["command"] = command
    if info["sources"]["form"] == "stem":
        info["note"] = (
            ".stem.mp4 sources decode through ffmpeg: a different ffmpeg build may change bytes"
        )
    with new_folder(out, sources=[dataset.root]) as temp:
        for relative in [DATASET_JSON, *dataset.table_files()]:
            place_file(dataset.path(relative), temp / relative, copy=True)
        (temp / RECIPE_JSON).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return Recipe.open(out)


def source_differences(recipe: Recipe, found: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Per source file that is missing here or differs from the recipe's: a line saying how."""
    lines = {}
    for name, want in sorted(recipe.source_files.items()):
        have = found.get(name)
        if have is None:
            lines[name] = f"{name} is missing"
        elif have != {"bytes": want["bytes"], "checksum": want["checksum"]}:
            lines[name] = (
                f"{name} differs (recipe: {want['bytes']} bytes, xxh3 {want['checksum']}; "
                f"here: {have['bytes']} bytes, xxh3 {have['checksum']})"
            )
    return lines


def refuse_mismatch(what: list[str], root: str | Path) -> None:
    """A rebuild that cannot give the recipe's bytes is refused before anything is written."""
    shown = "; ".join(what[:3]) + (f"; and {len(what) - 3} more" if len(what) > 3 else "")
    raise ConfigError(
        f"{root} cannot rebuild this recipe byte for byte: {shown}. Use the sources and builds "
        "the recipe names, or pass --allow-mismatch to rebuild anyway and report each item"
    )
