"""The dataset card (`msaug card`): OUT/README.md, for whoever receives a copy of the folder.

A shared dataset outlives the command that made it; the card says, without msaug installed,
what is in it, how it was made (exact command and config), how to check a copy is intact and
under which terms it may be used.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from manifests.checksum import CHECKSUM_ALGO
from manifests.dataset import Dataset
from manifests.files import atomic_path
from manifests.schema import DATASET_JSON

CARD_FILE = "README.md"
COLUMNS_DOC = "docs/manifest.md"

LICENCE = """\
Every file here is derived from the source tracks listed above and inherits their terms. If
they are MUSDB18 or MUSDB18-HQ tracks (Rafii et al., 2017,
https://sigsep.github.io/datasets/musdb.html), they may only be used for academic,
non-commercial research: use this dataset for non-commercial research only, share it only with
people entitled to use MUSDB18 under the same terms, and cite MUSDB18 when you publish results
obtained with it. msaug's demo tracks (`msaug demo-data`) are synthetic and carry no such
restriction."""

USE = """\
Intended use: training and ablating music source separation models (mixture in, stems out);
the tables say which effects each stem received, so subsets select by augmentation.

Limitations: every item is a remix of the listed source tracks, so their number bounds the
variety of performances, instruments and productions a model sees; effects are rendered with
Rubber Band and pedalboard, which do not sound like every studio chain; the stems of incoherent
items do not belong together musically. Evaluate on real songs the dataset was not made from."""
SHOWN_TRACKS = 30
ALL_MODES = frozenset({"coherent", "semi-coherent", "incoherent"})


def format_bytes(size: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.2f} {unit} ({size:,} bytes)"
    return f"{size:,} bytes"


def provenance(header: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 keeps provenance under `provenance`; schema-1 headers (of parents and parts
    recorded before the change) kept it at the top level."""
    found = header.get("provenance")
    return found if isinstance(found, dict) else header


def _command(header: dict[str, Any]) -> str:
    command = provenance(header).get("command")
    if isinstance(command, list):
        return shlex.join(str(part) for part in command)
    return str(command) if command else "(not recorded)"


def _provenance(header: dict[str, Any], level: int) -> list[str]:
    """How a dataset was made, following selections and merges back to the renders."""
    mark = "#" * level
    made = provenance(header)
    lines = [f"Made with msaug {made.get('msaug_version', '?')} on {made.get('created', '?')}:"]
    lines += ["", "```", _command(header), "```", ""]
    if "parent" in header:
        parent = header["parent"]
        lines += [
            f"It holds the items of `{parent['root']}` for which `{header['where']}` is true.",
            "",
            f"{mark} Parent",
            "",
            *_provenance(parent["header"], level + 1),
        ]
    elif "parts" in header:
        lines += [
            f"It merges {len(header['parts'])} datasets; `origin` names each item's part.",
            "",
        ]
        for part in header["parts"]:
            n_items = part["header"].get("n_items")
            lines += [f"{mark} Part `{part['label']}`: {n_items} items from `{part['root']}`", ""]
            lines += _provenance(part["header"], level + 1)
    else:
        lines += _render_summary(header.get("identity") or {})
    return lines


def _spec_text(spec: dict[str, Any]) -> str:
    params = ", ".join(
        f"{name} {value[0]:g}..{value[1]:g}" if value[0] != value[1] else f"{name} {value[0]:g}"
        for name, value in sorted(spec.items())
        if isinstance(value, list) and len(value) == 2 and name != "modes"
    )
    return params or "-"


def _render_summary(identity: dict[str, Any]) -> list[str]:
    """The render's settings and effects config as tables, identical stems on one row; the
    full record stays in dataset.json `identity`."""
    settings, config = identity.get("settings"), identity.get("config")
    if not isinstance(settings, dict) or not isinstance(config, dict):  # schema-1 identity
        text = json.dumps(identity, indent=2, sort_keys=True)
        return [
            "Render configuration (`identity` in dataset.json):",
            "",
            "```json",
            text,
            "```",
            "",
        ]
    keys = ("mode", "seconds", "sample_rate", "seed", "format", "subtype", "stretch_backend")
    lines = [
        "Settings: "
        + ", ".join(f"{k} {settings.get(k)}" for k in keys if k in settings)
        + f"; draw scheme {identity.get('draw_scheme', '?')}; "
        + ", ".join(f"{k} {v}" for k, v in sorted((identity.get("libraries") or {}).items())),
        "",
        "| effect | p | parameters | modes | stems |",
        "|---|---|---|---|---|",
    ]
    rows: dict[tuple[str, str, str, str], list[str]] = {}
    for stem, effects in (config.get("effects") or {}).items():
        for kind, spec in effects.items():
            listed = spec.get("modes") or []
            modes = "all" if set(listed) >= ALL_MODES else ", ".join(listed)
            rows.setdefault((kind, f"{spec.get('p', '?')}", _spec_text(spec), modes), []).append(
                stem
            )
    n_stems = len(config.get("effects") or {})
    for (kind, p, params, modes), stems in rows.items():
        who = "all" if len(stems) == n_stems else ", ".join(stems)
        lines.append(f"| {kind} | {p} | {params} | {modes} | {who} |")
    shared = ", ".join(sorted(config.get("shared") or {})) or "none"
    gains = config.get("gain_db") or {}
    gain_text = ", ".join(
        f"{s} {lo:g}..{hi:g} dB" for s, (lo, hi) in gains.items() if (lo, hi) != (0, 0)
    )
    lines += [
        "",
        f"Coherent items share: {shared}. Per-stem gains: {gain_text or 'none'}. "
        f"Suitability: {json.dumps(config.get('suitability', {}), sort_keys=True)}.",
        "",
        *_sources(identity.get("sources") or {}),
    ]
    return lines


def _sources(sources: dict[str, Any]) -> list[str]:
    names = sorted(sources.get("frames") or {})
    if not names:
        return []
    shown = ", ".join(f"`{n}`" for n in names[:SHOWN_TRACKS])
    more = f" and {len(names) - SHOWN_TRACKS} more" if len(names) > SHOWN_TRACKS else ""
    return [
        f"Source tracks ({len(names)}, identified by content, listing digest "
        f"`{sources.get('digest', '?')}`): {shown}{more}.",
        "",
    ]


def _counts_table(dataset: Dataset) -> list[str]:
    counts = dataset.items.groupby(["subset", "role", "mode"]).size()
    lines = ["| subset | role | mode | items |", "|---|---|---|---|"]
    lines += [f"| {sub} | {role} | {mode} | {n} |" for (sub, role, mode), n in counts.items()]
    return [*lines, f"| all | all | all | {len(dataset)} |"]


def card_text(dataset: Dataset) -> str:
    items, stems, root = dataset.items, dataset.stems, dataset.root
    mixture_bytes = int(items["bytes"].sum())
    stem_bytes = int(stems["bytes"].sum())
    manifest_files = (DATASET_JSON, *dataset.table_files())
    manifest_bytes = sum((root / p).stat().st_size for p in manifest_files)
    names = dataset.stem_names
    hours = float((items["num_frames"] / items["sample_rate"]).sum()) / 3600
    total = mixture_bytes + stem_bytes + manifest_bytes
    tracks = stems["source_track"].nunique()
    lines = [
        f"# {root.resolve().name}: an msaug dataset",
        "",
        f"{len(dataset)} items for training music source separation models, each a mixture "
        f"and its {len(names)} stems ({', '.join(names)}) as "
        f"{int(items['channels'].max())}-channel audio at {dataset.sample_rate} Hz, "
        f"augmented offline by msaug from {tracks} source tracks. Folders follow the MUSDB18-HQ "
        f"layout (`<subset>/<item_id>/{{mixture,{','.join(names)}}}.wav`), so "
        "`musdb.DB(root, is_wav=True)` reads them; the tables `manifest/items/` and "
        "`manifest/stems/` (Parquet) describe every item and stem (sources, offsets, gains, "
        "effects and their parameters, levels, checksums).",
        "",
        "## How it was made",
        "",
        *_provenance(dataset.header, 3),
        "## Contents",
        "",
        *_counts_table(dataset),
        "",
        f"- Audio: {hours:.3f} hours of mixtures ({len(names)} stems each on top).",
        f"- Mixtures: {format_bytes(mixture_bytes)}; stems: {format_bytes(stem_bytes)}; "
        f"manifest: {format_bytes(manifest_bytes)}; total {format_bytes(total)}.",
        "",
        "## Checking a copy",
        "",
        f"Every audio file's size and {CHECKSUM_ALGO} checksum (xxHash XXH3, 128 bit, hex) is in "
        "the tables (`bytes`, `checksum`). With msaug installed:",
        "",
        "```",
        "msaug verify DATASET          # files, tables, digest; exit 1 on a problem",
        f"msaug verify DATASET --expect {dataset.header.get('digest') or 'DIGEST'}",
        "```",
        "",
        "The second line checks that a copy is exactly this dataset: its digest covers the "
        "identity and every row of both tables, so every audio checksum.",
        "",
        "Without msaug (`pip install pandas pyarrow xxhash`):",
        "",
        "```python",
        "import pandas as pd, xxhash",
        "for table, column in (('items', 'mixture_path'), ('stems', 'path')):",
        "    rows = pd.read_parquet(f'manifest/{table}/')",
        "    for path, checksum in zip(rows[column], rows['checksum']):",
        "        assert xxhash.xxh3_128_hexdigest(open(path, 'rb').read()) == checksum, path",
        "```",
        "",
        "## Columns",
        "",
        f"The column reference is `{COLUMNS_DOC}` in the msaug repository. Queries such as "
        "`msaug select DATASET --where \"mode == 'incoherent' and not vocals_pitch_shift_applied\" "
        "--out SUBSET` run on the items columns plus every stem column as `<stem>_<column>`.",
        "",
        "## Use",
        "",
        USE,
        "",
        "## Licence",
        "",
        LICENCE,
        "",
    ]
    return "\n".join(lines)


def write_card(root: str | Path) -> Path:
    dataset = Dataset.open(root)
    path = dataset.root / CARD_FILE
    with atomic_path(path) as temp:
        temp.write_text(card_text(dataset))
    return path
