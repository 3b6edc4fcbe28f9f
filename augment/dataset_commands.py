"""`msaug` commands for datasets: verify, select, stats, merge, card, pack, unpack, migrate,
columns.

Each is a thin layer over a `manifests` function. Dataset problems arrive as `ManifestError`,
which the `msaug` group prints as one line (exit status 2); `verify` exits with status 1 when
the dataset it checked has problems, after listing each of them.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from augment.errors import ConfigError
from manifests import SCHEMA_VERSION, Dataset
from manifests.card import write_card
from manifests.derive import Written
from manifests.merge import merge as merge_datasets
from manifests.migrate import migrate as migrate_dataset
from manifests.pack import pack as pack_dataset
from manifests.pack import parse_size
from manifests.pack import unpack as unpack_dataset
from manifests.query import column_summary
from manifests.stats import compute_stats
from manifests.subset import write_selection
from manifests.verify import verify as verify_dataset

_PATH = click.Path(path_type=Path)


def _command_line() -> str:
    """The command as typed, recorded in the dataset.json of what it writes."""
    return shlex.join(["msaug", *sys.argv[1:]])


def _written(what: str, written: Written) -> str:
    files = f"{written.linked} files hard-linked, {written.copied} copied"
    return f"{what} {written.n_items} items to {written.root} ({files})"


@click.command()
@click.argument("root", type=_PATH)
@click.option("--quick", is_flag=True, help="Check existence and sizes only (no checksums).")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Files (or shards) checked in parallel.",
)
@click.option(
    "--expect",
    metavar="DIGEST",
    help="The digest the dataset's publisher posted; fail unless the dataset has it.",
)
def verify(root: Path, quick: bool, jobs: int, expect: str | None) -> None:
    """Check ROOT's tables, its dataset.json and every file its manifest lists.

    ROOT is a rendered folder or a shard folder from `msaug pack`. Reports missing, truncated
    (size differs), altered (checksum differs), unreadable or misshapen audio, audio files the
    manifest does not list, links that lead outside ROOT, table files or rows that differ from
    dataset.json's checksums and digest, and (with --expect) a digest other than the posted
    one. Without --expect it proves internal consistency only. Exit status 1 on any problem.
    """
    report = verify_dataset(root, quick=quick, jobs=jobs, progress=True, expect=expect)
    for problem in report.problems:
        click.echo(str(problem))
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


@click.command()
@click.argument("root", type=_PATH)
@click.option(
    "--where",
    default=None,
    help="pandas query over the items columns and <stem>_<column> stem columns, e.g. "
    "\"mode == 'incoherent' and not vocals_pitch_shift_applied\". Omit to take every "
    "item (this also rewrites an older schema as the current one).",
)
@click.option("--out", required=True, type=_PATH, help="New folder for the selection.")
@click.option("--copy", is_flag=True, help="Copy audio instead of hard-linking it.")
def select(root: Path, where: str | None, out: Path, copy: bool) -> None:
    """Write the items of ROOT that match --where as a dataset of their own.

    Columns: every items column (item_id, subset, role, mode, seconds, sample_rate,
    num_frames, mixture_rms_db, origin, ...) and every stem column prefixed by its stem
    (vocals_pitch_shift_applied, vocals_time_stretch_duration_factor, drums_gain_db,
    bass_source_track, ...); see docs/manifest.md.
    """
    selection = Dataset.open(root).select(where)
    click.echo(_written("selected", write_selection(selection, out, copy, _command_line())))


@click.command()
@click.argument("root", type=_PATH)
@click.option("--plot", type=_PATH, default=None, help="Folder for PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
def stats(root: Path, plot: Path | None, as_json: bool) -> None:
    """Counts, effect rates against the config, parameter and level summaries, track coverage."""
    dataset = Dataset.open(root)
    numbers = compute_stats(dataset)
    if as_json:
        click.echo(json.dumps(numbers.to_dict(), indent=2))
    else:
        click.echo(numbers.to_text())
    if plot is not None:
        from manifests.plots import write_plots  # matplotlib loads only when plotting

        for path in write_plots(dataset, numbers, plot):
            click.echo(f"wrote {path}", err=as_json)


@click.command()
@click.argument("roots", nargs=-1, required=True, type=_PATH)
@click.option("--out", required=True, type=_PATH, help="New folder for the merged dataset.")
@click.option("--copy", is_flag=True, help="Copy audio instead of hard-linking it.")
def merge(roots: tuple[Path, ...], out: Path, copy: bool) -> None:
    """Merge datasets ROOTS into one; colliding item ids of later parts get a p<index>- prefix."""
    click.echo(_written("merged", merge_datasets(roots, out, copy, _command_line())))


@click.command()
@click.argument("root", type=_PATH)
def card(root: Path) -> None:
    """Write ROOT/README.md: contents, provenance, sizes, how to verify, licence."""
    click.echo(f"wrote {write_card(root)}")


@click.command()
@click.argument("root", type=_PATH)
@click.option("--out", required=True, type=_PATH, help="New folder for the shards.")
@click.option(
    "--shard-size",
    default="1GB",
    show_default=True,
    help="Target shard size: a number with B, KB, MB, GB, TB (or KiB, MiB, GiB).",
)
@click.option(
    "--no-valid",
    is_flag=True,
    help="Leave the validation songs out (verbatim source audio); the shards get their own "
    "manifest and digest.",
)
def pack(root: Path, out: Path, shard_size: str, no_valid: bool) -> None:
    """Pack ROOT into webdataset tar shards (shard-000000.tar, ...) plus its manifest."""
    try:
        size = parse_size(shard_size)
    except ValueError as exc:
        raise ConfigError(f"--shard-size: {exc}") from exc
    shards = pack_dataset(
        root, out, size, progress=True, include_valid=not no_valid, command=_command_line()
    )
    click.echo(f"packed {root} into {len(shards)} shards in {out}")


@click.command()
@click.argument("shards", type=_PATH)
@click.option("--out", required=True, type=_PATH, help="New folder for the dataset.")
def unpack(shards: Path, out: Path) -> None:
    """Restore the folder form of a packed dataset, byte for byte."""
    written = unpack_dataset(shards, out, progress=True)
    click.echo(f"unpacked {written.n_items} items ({written.copied} audio files) to {out}")


@click.command()
@click.argument("root", type=_PATH)
def migrate(root: Path) -> None:
    """Rewrite ROOT in place in the current manifest schema (audio untouched, atomic).

    Older datasets open without this (they are upgraded in memory); migrating adds what the
    new schema records, such as the digest that `msaug verify` checks.
    """
    done = migrate_dataset(root)
    if done.from_version == SCHEMA_VERSION:
        click.echo(f"{root} is already manifest schema {SCHEMA_VERSION}; digest {done.digest}")
    else:
        click.echo(
            f"{root}: manifest schema {done.from_version} -> {SCHEMA_VERSION}; digest {done.digest}"
        )


@click.command()
@click.argument("root", type=_PATH)
def columns(root: Path) -> None:
    """The columns `--where` can use in ROOT: name, type and example values.

    Example: msaug columns aug   (then: msaug select aug --where "mode == 'coherent'" ...)
    """
    dataset = Dataset.open(root)
    rows = column_summary(dataset.wide, dataset.stem_names)
    width = max(len(name) for name, _, _ in rows)
    kinds = max(len(kind) for _, kind, _ in rows)
    click.echo(f"{len(rows)} columns of {root} (<stem> is one of {', '.join(dataset.stem_names)})")
    for name, kind, examples in rows:
        click.echo(f"  {name:<{width}}  {kind:<{kinds}}  {examples}")


DATASET_COMMANDS = (verify, select, stats, merge, card, pack, unpack, migrate, columns)
