"""What decides a render's bytes (its identity) and what only records how it was made.

The identity is compared on every resume or extension and by `msaug merge` when it rejoins
`--shard` parts: settings, the resolved config, the sources by content (relative names, sizes
and checksums, never the absolute root, so renders of the same songs mounted at different
paths share one identity), the draw scheme and the library builds that shape the audio.
Provenance (the root path, the command, msaug's release, other library versions) is kept but
never compared.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from augment.config import RenderConfig, parse_mode
from augment.plan import DRAW_SCHEME
from augment.settings import RenderSettings
from augment.source_index import checksums, source_files
from augment.sources import Track
from manifests.writer import package_version

PROVENANCE_PACKAGES = ("msaug", "numpy", "soundfile", "pyrubberband", "pandas", "pyarrow")


def source_listing(tracks: list[Track], root: Path, progress: bool = False) -> dict[str, Any]:
    """Every source file's relative name, size and content checksum, and one digest of them.

    Checksums come from the index beside the sources (`augment.source_index`): only files
    that are new or changed since it was written are read, so the first render (or `msaug
    index`) reads MUSDB18-HQ once and later starts and `--shard` jobs read nothing.
    """
    named = {name: path for track in tracks for name, path in source_files(track).items()}
    files = checksums(root, named, progress)
    frames = {f"{t.subset}/{t.name}": [t.num_frames, t.sample_rate] for t in tracks}
    text = json.dumps({"files": files, "frames": frames}, sort_keys=True)
    return {
        "digest": hashlib.sha256(text.encode()).hexdigest(),
        "n_tracks": len(tracks),
        "frames": frames,
        "files": files,
    }


def _tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def library_versions(settings: RenderSettings, form: str) -> dict[str, str]:
    """The builds whose change would change output bytes: pedalboard (its effects and its
    Rubber Band), the rubberband CLI when it stretches, ffmpeg when it decodes `.stem.mp4`."""
    versions = {"pedalboard": package_version("pedalboard")}
    if settings.stretch_backend == "pyrubberband":
        versions["rubberband"] = _tool_version(["rubberband", "--version"])
    if form == "stem":
        versions["ffmpeg"] = _tool_version(["ffmpeg", "-version"])
    return versions


def identity(
    settings: RenderSettings, config: RenderConfig, listing: dict[str, Any], form: str
) -> dict[str, Any]:
    """What a resumed, extended or rejoined render must share with the original."""
    fields = asdict(settings)
    for name in ("root", "config_path"):
        fields.pop(name)
    return {
        "settings": {**fields, "mode_weights": parse_mode(settings.mode)},
        "config": config.to_dict(),
        "sources": listing,
        "draw_scheme": DRAW_SCHEME,
        "libraries": library_versions(settings, form),
    }


def provenance(settings: RenderSettings, command: str) -> dict[str, Any]:
    return {
        "command": command,
        "source_root": str(Path(settings.root).resolve()),
        "config_path": settings.config_path,
        "versions": {name: package_version(name) for name in PROVENANCE_PACKAGES},
    }


def settings_from_identity(identity: dict[str, Any], root: str) -> RenderSettings:
    """The settings a dataset was rendered with, from either identity form: schema 2's
    (`settings`, root in provenance) or schema 1's flat one (root inside it)."""
    fields = dict(identity.get("settings", identity))
    names = set(RenderSettings.__dataclass_fields__) - {"root", "config_path"}
    return RenderSettings(root=root, **{k: v for k, v in fields.items() if k in names})
