"""`mstrain eval` and `mstrain separate`: scoring and using a trained model (or a baseline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from train.checkpoint import load_run_model
from train.compare import EVAL_JSON, compare
from train.config import default
from train.errors import TrainError
from train.evaluate import evaluate_run
from train.inference import CHUNK_SECONDS, OVERLAP, check_overlap
from train.loop import resolve_device
from train.nmf import CLUSTER_AXES, NMFConfig, evaluate_nmf
from train.options import DEVICES, config_option
from train.separate import check_song_names, separate_song
from train.validation import MUSDB_SUBSETS


@click.command("eval")
@click.option(
    "--run", type=click.Path(path_type=Path), default=None, help="Run folder of a trained model."
)
@click.option(
    "--model",
    "baseline",
    type=click.Choice(["nmf"]),
    default=None,
    help="Score a baseline instead of a run: nmf is NMF + k-means with an oracle assignment "
    "(it reads the references: a floor, not a separator).",
)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    required=True,
    help="MUSDB18 root (HQ wav folders or .stem.mp4).",
)
@click.option("--subset", type=click.Choice(MUSDB_SUBSETS), default="test", show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Results folder.  [default: RUN/eval-SUBSET, or runs/nmf/eval-SUBSET]",
)
@click.option(
    "--chunk-seconds",
    type=float,
    default=None,
    help=f"Chunk length.  [default: {CHUNK_SECONDS:g} for a run, "
    f"{default(NMFConfig, 'chunk_seconds'):g} for nmf --per-chunk]",
)
@click.option(
    "--overlap",
    type=float,
    default=OVERLAP,
    show_default=True,
    help="Run: fraction of each chunk shared with the next, 0 <= overlap < 1.",
)
@click.option(
    "--tracks",
    "names",
    multiple=True,
    metavar="NAME",
    help="Run: score only this track of the subset (repeat for more).  [default: all]",
)
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    help="Run: tracks scored in parallel worker processes (-1: all CPUs), each with its own "
    "copy of the model; the scores are the same at any --jobs.",
)
@click.option(
    "--usdr-only",
    is_flag=True,
    help="Run: score the whole-track SDR only, without museval's framewise cSDR (which is "
    "most of an eval's time); per_track.json then holds uSDR alone.",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@config_option(NMFConfig, "components", "--components", type=int, help="nmf: NMF components.")
@config_option(NMFConfig, "clusters", "--clusters", type=int, help="nmf: k-means clusters.")
@config_option(NMFConfig, "seed", "--seed", type=int, help="nmf: seed of NMF init and k-means.")
@config_option(
    NMFConfig,
    "cluster_on",
    "--cluster-on",
    type=click.Choice(CLUSTER_AXES),
    help="nmf: k-means of the rows of H (activations, the source's report) or of the columns "
    "of W (bases, the source's script).",
)
@config_option(
    NMFConfig,
    "per_chunk",
    "--per-chunk",
    is_flag=True,
    help="nmf: factorise, cluster and assign per --chunk-seconds chunk instead of once per "
    "song (not the source's system).",
)
def eval_command(
    run: Path | None,
    baseline: str | None,
    root: Path,
    subset: str,
    out: Path | None,
    chunk_seconds: float | None,
    overlap: float,
    names: tuple[str, ...],
    jobs: int,
    usdr_only: bool,
    device: str,
    **nmf: Any,
) -> None:
    """Separate every track of a MUSDB18 subset (or the --tracks named) and score it with
    museval."""
    if baseline == "nmf":
        if run is not None:
            raise TrainError("--model nmf needs no --run: the NMF baseline trains nothing")
        run_only = {
            "--tracks": bool(names),
            "--jobs": jobs != 1,
            "--overlap": overlap != OVERLAP,
            "--usdr-only": usdr_only,
        }
        given = [flag for flag, on in run_only.items() if on]
        if given:
            raise TrainError(f"{given[0]} applies to --run only; --model nmf scores every track")
        if chunk_seconds is not None:
            if not nmf["per_chunk"]:
                raise TrainError("--chunk-seconds applies to --model nmf only with --per-chunk")
            nmf["chunk_seconds"] = chunk_seconds
        config = NMFConfig(**nmf)
        out = out or Path("runs") / "nmf" / f"eval-{subset}"
        out.mkdir(parents=True, exist_ok=True)
        click.echo(evaluate_nmf(root, subset, out, config))
        return
    if run is None:
        raise TrainError("eval needs --run RUN (a training run folder), or --model nmf")
    check_overlap(overlap)
    model, payload = load_run_model(run)
    out = out or run / f"eval-{subset}"
    out.mkdir(parents=True, exist_ok=True)
    chunk_seconds = CHUNK_SECONDS if chunk_seconds is None else chunk_seconds
    table = evaluate_run(
        model,
        root,
        subset,
        out,
        resolve_device(device),
        chunk_seconds,
        names,
        jobs,
        overlap,
        csdr=not usdr_only,
    )
    record = {"run": str(run), "seed": run_seed(payload), "usdr_only": usdr_only}
    (out / EVAL_JSON).write_text(json.dumps(record, indent=2) + "\n")
    click.echo(table)


def run_seed(payload: dict[str, Any]) -> int | None:
    """The `--seed` a run trained with; a `--target all` stack of one-source runs shares one."""
    parts = [payload] if "config" in payload else list(payload.values())
    seeds = {part["config"]["loop"]["seed"] for part in parts}
    return seeds.pop() if len(seeds) == 1 else None


@click.command("separate")
@click.option("--run", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.argument("songs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("separated"),
    show_default=True,
    help="Writes OUT/<song name>/<source>.wav.",
)
@click.option("--chunk-seconds", type=float, default=CHUNK_SECONDS, show_default=True)
@click.option(
    "--overlap",
    type=float,
    default=OVERLAP,
    show_default=True,
    help="Fraction of each chunk shared with the next, 0 <= overlap < 1: more smooths chunk "
    "seams and costs 1 / (1 - overlap) times the forward passes of abutting chunks.",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--stem", default=None, help="Two stems: this source and no_<source> (the rest).")
@click.option(
    "--format", "fmt", type=click.Choice(["wav", "flac"]), default="wav", show_default=True
)
@click.option(
    "--subtype",
    type=click.Choice(["FLOAT", "PCM_24", "PCM_16"]),
    default="FLOAT",
    show_default=True,
    help="FLOAT never clips; PCM clips estimates above full scale.",
)
def separate_command(
    run: Path,
    songs: tuple[Path, ...],
    out: Path,
    chunk_seconds: float,
    overlap: float,
    device: str,
    stem: str | None,
    fmt: str,
    subtype: str,
) -> None:
    """Write one file per source for each song, at the song's rate, length and channels."""
    check_song_names(songs)
    check_overlap(overlap)
    model, _ = load_run_model(run)
    for song in songs:
        paths = separate_song(
            model, song, out, resolve_device(device), chunk_seconds, stem, fmt, subtype, overlap
        )
        for path in paths:
            click.echo(str(path))


@click.command("compare")
@click.argument("variants", nargs=-1, required=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("compare"),
    show_default=True,
    help="Writes compare.md and compare.png.",
)
@click.option("--bootstrap", "replicates", default=2000, show_default=True, help="Replicates.")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap.")
@click.option(
    "--paired-seeds",
    is_flag=True,
    help="The k-th run of every variant shares its seed: resample seeds jointly, so what a "
    "seed does to every variant alike cancels (all variants need the same number of runs).",
)
def compare_command(
    variants: tuple[str, ...], out: Path, replicates: int, seed: int, paired_seeds: bool
) -> None:
    """Compare eval results: paired differences with 95% bootstrap intervals.

    Each VARIANT is LABEL=DIR[,DIR...]: `mstrain eval` folders (or run folders with one
    eval-* folder) of one recipe, several for several seeds. The first variant is the
    reference. Example: mstrain compare base=runs/a/eval-test aug=runs/b/eval-test
    """
    click.echo(compare(list(variants), out, replicates, seed, paired_seeds))
