"""Click side of recipes: `msaug recipe`, and what `msaug render --recipe` prints."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from augment.rebuild import RebuildReport
from augment.recipe import write_recipe

_RECIPE_DECIDES = (
    "mode", "n", "seconds", "sample_rate", "subset", "split", "seed", "config_path", "fmt",
    "subtype", "stretch_backend", "quality", "source_format", "valid_tracks", "valid_count",
)  # fmt: skip


def refuse_with_recipe(ctx: click.Context) -> None:
    """A recipe decides every byte-shaping setting: a flag that would change one is refused."""
    given = [
        param.opts[0]
        for param in ctx.command.params
        if param.name in _RECIPE_DECIDES
        and ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise click.UsageError(
            f"{', '.join(given)} cannot go with --recipe: the recipe decides them"
        )


def print_rebuild(report: RebuildReport) -> None:
    for item_id, why in sorted(report.mismatches.items())[:20]:
        click.echo(f"  {item_id}: {why}", err=True)
    if report.identical:
        click.echo(f"rebuilt byte for byte: digest {report.digest} equals the recipe's")
    elif not report.complete and not report.mismatches:
        click.echo(
            f"every item rebuilt so far matches the recipe; the digest ({report.digest}) is "
            f"compared once all items are in (merge `--shard` parts with `msaug merge`)"
        )
    elif not report.mismatches:
        click.echo(
            f"NOT identical: every item's audio matches the recipe, but the digest "
            f"{report.digest} is not the recipe's {report.expected_digest}: it covers the "
            f"sources and builds, and these differ: {'; '.join(report.differences)}",
            err=True,
        )
        sys.exit(1)
    else:
        click.echo(
            f"NOT identical: {len(report.mismatches)} item(s) differ from the recipe; digest "
            f"{report.digest}, recipe's {report.expected_digest}",
            err=True,
        )
        sys.exit(1)


@click.command("recipe")
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Recipe folder.")
def recipe_command(dataset: str, out: str) -> None:
    """Write DATASET's recipe: its manifest without audio, to rebuild it from the sources.

    Share the recipe (about a megabyte) instead of the audio; anyone with the same songs runs
    `msaug render --recipe RECIPE --root SONGS --out DATASET` and gets the same bytes.
    """
    written = write_recipe(dataset, out, shlex.join(["msaug", *sys.argv[1:]]))
    size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    click.echo(
        f"recipe of {written.info['n_items']} items and {len(written.info['valid_songs'])} "
        f"validation songs -> {out} ({size / 1e6:.2f} MB); digest {written.digest}\n"
        f"rebuild with: msaug render --recipe {shlex.quote(out)} --root YOUR_SOURCES --out "
        "DATASET"
    )
