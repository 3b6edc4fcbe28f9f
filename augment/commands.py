"""Click commands of the render stage: prepare, render, rerender."""

from __future__ import annotations

import shlex
import signal
import sys

import click

from augment.backends import BACKENDS
from augment.config import MODES
from augment.errors import SourceError
from augment.prepare import prepare_cache
from augment.rebuild import rebuild_dataset
from augment.recipe_commands import print_rebuild, refuse_with_recipe
from augment.render import RenderSettings, RenderSummary, render_dataset
from augment.rerender import rerender_item
from augment.source_index import INDEX_FILE, index_sources
from augment.stretch import QUALITIES, STRETCH_BACKENDS
from manifests.files import SUBTYPES


@click.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Cache folder.")
@click.option("--jobs", default=-1, show_default=True, help="Parallel decoders (-1: all cores).")
@click.option("--subtype", type=click.Choice(SUBTYPES), default="FLOAT", show_default=True)
def prepare(root: str, out: str, jobs: int, subtype: str) -> None:
    """Decode a .stem.mp4 MUSDB18 ROOT once into an HQ-layout wav cache (resumable).

    Example: msaug prepare ~/musdb18 --out ~/musdb18-cache
    """
    summary = prepare_cache(root, out, jobs=jobs, subtype=subtype)
    click.echo(f"decoded {summary.decoded} tracks, {summary.skipped} already cached -> {out}")


@click.command("index")
@click.argument("root", type=click.Path(file_okay=False))
def index(root: str) -> None:
    """Hash every source file of ROOT once into ROOT/.msaug-index.json.

    Renders name their sources by content; with the index they read only files that changed
    since (size, mtime or inode), so 100 `--shard` jobs do not each read all of MUSDB18.
    A render also updates the index itself when ROOT is writable.
    """
    n_files, written = index_sources(root, progress=True)
    if not written:
        raise SourceError(
            f"{root} is read-only, so its index cannot be written: renders will hash its "
            f"{n_files} files at every start; run `msaug index` where the files are writable"
        )
    click.echo(f"indexed {n_files} source files in {root}/{INDEX_FILE}")


def _print_summary(summary: RenderSummary, command: str, replayed: bool = False) -> None:
    """The end of a render; a replay (`--recipe`) draws nothing, so it says no more than what
    was written (`print_rebuild` then compares it with the recipe)."""
    if summary.interrupted:
        signum = getattr(signal, summary.interrupted)
        click.echo(
            f"interrupted by {summary.interrupted}: {summary.skipped + summary.rendered} of "
            f"{summary.requested} items are in {summary.out}, a valid dataset (`msaug verify` "
            f"passes); resume with: {command}",
            err=True,
        )
        sys.exit(128 + signum)
    folded = (
        f"; {summary.folded} finished item folders that no manifest part listed were folded "
        "in, not rendered again"
        if summary.folded
        else ""
    )
    beyond = f" ({summary.requested} requested)" if summary.present > summary.requested else ""
    click.echo(
        f"{'rebuilt' if replayed else 'rendered'} {summary.rendered} items "
        f"({summary.skipped} already done) in {summary.seconds:.1f} s -> {summary.out}{folded}\n"
        f"dataset: {summary.present} items{beyond} and "
        f"{summary.valid_songs} validation songs, {summary.hours:.2f} h of mixtures, "
        f"{summary.bytes / 1e6:.1f} MB" + ("" if replayed else f", {summary.attempts} draws")
    )
    if replayed:
        return
    rejected = ", ".join(f"{k} {v}" for k, v in summary.rejected.most_common()) or "none"
    click.echo(f"rejected draws by stem:reason: {rejected}")
    if summary.present == 0:
        raise SourceError(
            "no item could be drawn: every segment was rejected as silent; check the sources "
            "or relax [suitability] in --config"
        )
    if summary.failed:
        click.echo(
            f"{len(summary.failed)} item(s) could not be drawn (no usable segment within the "
            f"attempts): indices {sorted(summary.failed)[:20]}; see failed_items in dataset.json",
            err=True,
        )


def _parse_shard(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    k, _, m = value.partition("/")
    try:
        return int(k), int(m)
    except ValueError:
        raise click.BadParameter(f"expected K/N such as 0/4, got {value!r}") from None


@click.command()
@click.option("--root", required=True, type=click.Path(), help="MUSDB18 / HQ / cache root.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset folder.")
@click.option(
    "--mode",
    default="incoherent",
    show_default=True,
    help=f"One of {', '.join(MODES)}, or a blend: mix:coherent=0.3,incoherent=0.7",
)
@click.option("--n", "n", default=100, show_default=True, help="Number of items.")
@click.option("--seconds", default=10.0, show_default=True, help="Item length.")
@click.option("--sr", "sample_rate", default=44100, show_default=True, help="Sample rate.")
@click.option("--subset", default="train", show_default=True, help="Source subset to draw from.")
@click.option(
    "--split",
    type=click.Choice(["train", "valid", "all"]),
    default="train",
    show_default=True,
    help="musdb's train/valid split of the subset.",
)
@click.option("--seed", default=0, show_default=True, help="Run seed.")
@click.option("--jobs", default=-1, show_default=True, help="Workers (-1: all cores).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Effects TOML.")
@click.option(
    "--format", "fmt", type=click.Choice(["wav", "flac"]), default="wav", show_default=True
)
@click.option("--subtype", type=click.Choice(SUBTYPES), default="PCM_16", show_default=True)
@click.option(
    "--stretch-backend",
    type=click.Choice(STRETCH_BACKENDS),
    default="pedalboard",
    show_default=True,
)
@click.option(
    "--quality",
    type=click.Choice(QUALITIES),
    default="best",
    show_default=True,
    help="Rubber Band engine: best = R3, fast = R2 (see docs/effects.md).",
)
@click.option(
    "--source-format", type=click.Choice(["auto", "wav", "stem"]), default="auto", show_default=True
)
@click.option("--batch-size", default=4, show_default=True, help="Items per worker task.")
@click.option(
    "--shard",
    default="0/1",
    show_default=True,
    callback=_parse_shard,
    help="K/N: render only items i with i mod N == K (one part per machine).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="loky",
    show_default=True,
    help="Where batches run: local processes, or a dask / ray cluster.",
)
@click.option(
    "--scheduler",
    help="dask scheduler (tcp://host:8786) or ray address; without it a local cluster starts.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--force", is_flag=True, help="Render even if the disk seems too small.")
@click.option(
    "--valid-tracks",
    multiple=True,
    metavar="NAME",
    help="A song written unaugmented as validation (repeat); default: musdb's validation songs.",
)
@click.option(
    "--valid-count",
    type=int,
    default=None,
    help="Draw this many songs (by --seed) as validation, for roots that are not MUSDB18.",
)
@click.option(
    "--recipe",
    "recipe",
    type=click.Path(file_okay=False),
    help="Rebuild the dataset of this recipe (`msaug recipe`) from --root, byte for byte.",
)
@click.option(
    "--allow-mismatch",
    is_flag=True,
    help="With --recipe: rebuild even if sources or builds differ, and report each item.",
)
@click.pass_context
def render(
    ctx,
    root,
    out,
    mode,
    n,
    seconds,
    sample_rate,
    subset,
    split,
    seed,
    jobs,
    config_path,
    fmt,
    subtype,
    stretch_backend,
    quality,
    source_format,
    batch_size,
    shard,
    backend,
    scheduler,
    quiet,
    force,
    valid_tracks,
    valid_count,
    recipe,
    allow_mismatch,
) -> None:
    """Render N augmented items from ROOT into OUT (rerun the same command to resume).

    Example: msaug render --root demo --out aug --mode incoherent --n 1000 --seconds 10

    With --recipe, rebuild a shared recipe's dataset instead: msaug render --recipe RECIPE
    --root MY_MUSDB18 --out DATASET (the recipe decides everything that shapes the bytes).
    """
    command = shlex.join(["msaug", *sys.argv[1:]])
    if recipe is None and allow_mismatch:
        raise click.UsageError("--allow-mismatch goes with --recipe")
    run = {
        "jobs": jobs,
        "batch_size": batch_size,
        "command": command,
        "progress": not quiet,
        "shard": shard,
        "backend": backend,
        "scheduler": scheduler,
        "force": force,
    }
    if recipe is not None:
        refuse_with_recipe(ctx)
        report = rebuild_dataset(recipe, root, out, allow_mismatch=allow_mismatch, **run)
        _print_summary(report.summary, command, replayed=True)
        print_rebuild(report)
        return
    settings = RenderSettings(
        root=root,
        source_form=source_format,
        subset=subset,
        split=split,
        mode=mode,
        seconds=seconds,
        sample_rate=sample_rate,
        seed=seed,
        config_path=config_path,
        format=fmt,
        subtype=subtype,
        stretch_backend=stretch_backend,
        quality=quality,
    )
    summary = render_dataset(
        settings, out, n, valid_tracks=valid_tracks, valid_count=valid_count, **run
    )
    _print_summary(summary, command)


@click.command()
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--item", "item_ids", multiple=True, required=True, help="Item id (repeatable).")
@click.option("--root", type=click.Path(), help="Source root, if it moved since the render.")
def rerender(dataset: str, item_ids: tuple[str, ...], root: str | None) -> None:
    """Re-render items from their manifest rows alone and compare checksums.

    Example: msaug rerender aug --item 0000042
    """
    all_ok = True
    for item_id in item_ids:
        report = rerender_item(dataset, item_id, root)
        states = ", ".join(f"{k} {'ok' if v else 'DIFFERS'}" for k, v in report.matches.items())
        click.echo(f"{item_id}: {'identical' if report.ok else 'MISMATCH'} ({states})")
        if not report.ok and report.drift:
            click.echo(f"  rendered with other builds: {'; '.join(report.drift)}")
        all_ok &= report.ok
    if not all_ok:
        sys.exit(1)
