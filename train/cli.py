"""`mstrain`: train (the default command), evaluate on MUSDB18, separate songs.

`mstrain --data OUT --model unet ...` and `mstrain train --data OUT ...` are the same command;
`mstrain eval ...` and `mstrain separate ...` are subcommands. Click options map onto the
dataclasses of `train/config.py` here and nowhere else. Errors a user can fix become one line
on stderr and exit status 2.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from train.checkpoint import load_run_model
from train.config import (
    TARGETS,
    DataConfig,
    LoopConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    check_config,
    default,
)
from train.errors import USER_ERRORS, TrainError
from train.evaluate import evaluate_run
from train.inference import CHUNK_SECONDS
from train.loop import fit, per_target_configs, resolve_device
from train.nmf import NMFConfig, evaluate_nmf
from train.separate import separate_song
from train.stopping import resume_line, stop_on_sigterm
from train.validation import MUSDB_SUBSETS

DEVICES = ("auto", "cpu", "cuda")


class _Group(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """An argument list that names no command is the `train` command's."""
        ctx.meta["argv"] = ["mstrain", *args]  # stored in checkpoints as the exact command
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help", "--version"):
            args = ["train", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            click.echo(f"mstrain: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="msaug")
def main() -> None:
    """Train source separation models on msaug datasets; evaluate and separate with them.

    Training is the default command: `mstrain --data OUT --model unet` runs `mstrain train`.
    """


def _option(cls: type, name: str, flag: str, **kwargs: Any):
    """A click option whose default is the config field's own."""
    return click.option(flag, name, default=default(cls, name), show_default=True, **kwargs)


def parse_model_args(pairs: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE pairs; VALUE is read as JSON when it parses (numbers, lists), else as text."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TrainError(f"--model-arg {pair!r} is not KEY=VALUE, e.g. widths=[4,8,16]")
        try:
            args[key] = json.loads(value)
        except json.JSONDecodeError:
            args[key] = value
    return args


def train_config(options: dict[str, Any]) -> TrainConfig:
    """The one place where command-line options become config dataclasses."""
    model = ModelConfig(name=options["model"], args=parse_model_args(options["model_arg"]))
    if options["out"] is None:
        options["out"] = Path("runs") / f"{model.name}-{options['target']}"

    def pick(cls: type) -> Any:
        return cls(**{f: options[f] for f in cls.__dataclass_fields__})

    config = TrainConfig(pick(DataConfig), model, pick(OptimConfig), pick(LoopConfig))
    check_config(config)
    return config


@main.command()
@click.option(
    "--data",
    "root",
    type=click.Path(path_type=Path),
    required=True,
    help="Dataset folder written by `msaug render`.",
)
@click.option(
    "--model",
    default=default(ModelConfig, "name"),
    show_default=True,
    help="Registered model name, e.g. unet, bsrnn.",
)
@click.option(
    "--model-arg",
    multiple=True,
    metavar="KEY=VALUE",
    help="Model constructor argument (JSON value), e.g. widths=[4,8,16]. Repeatable.",
)
@_option(
    DataConfig,
    "target",
    "--target",
    type=click.Choice(TARGETS),
    help="Source to learn, or all four (one model, or one per source for bsrnn/se-bsrnn).",
)
@_option(DataConfig, "where", "--where", help="Item selection, same syntax as `msaug select`.")
@_option(DataConfig, "segment", "--segment", type=float, help="Crop length in seconds.")
@click.option("--mono", is_flag=True, help="Downmix to one channel (default: stereo).")
@_option(DataConfig, "workers", "--workers", type=int, help="Data loader worker processes.")
@_option(
    DataConfig,
    "valid_root",
    "--valid-root",
    type=click.Path(path_type=Path),
    help="MUSDB18 root for validation; default: held-out rendered items.",
)
@_option(
    DataConfig,
    "valid_subset",
    "--valid-subset",
    type=click.Choice(["valid", "test"]),
    help="MUSDB18 tracks for validation: musdb's validation split of train, or test.",
)
@_option(
    DataConfig,
    "valid_fraction",
    "--valid-fraction",
    type=float,
    help="Fraction of rendered items held out when there is no --valid-root.",
)
@_option(
    DataConfig,
    "activity_db",
    "--activity-db",
    type=float,
    help="Source activity detection: redraw crops whose targets are all below this RMS "
    "level (dBFS), e.g. -50; off by default.",
)
@_option(OptimConfig, "lr", "--lr", type=float)
@_option(OptimConfig, "weight_decay", "--weight-decay", type=float, help="Adam's L2 penalty.")
@_option(OptimConfig, "lr_step", "--lr-step", type=int, help="Epochs between lr decays.")
@_option(OptimConfig, "lr_gamma", "--lr-gamma", type=float, help="lr factor per decay.")
@_option(OptimConfig, "clip", "--clip", type=float, help="Gradient norm clip.")
@_option(LoopConfig, "epochs", "--epochs", type=int)
@_option(
    LoopConfig,
    "batches_per_epoch",
    "--batches-per-epoch",
    type=int,
    help="Default: one pass over the training items.",
)
@_option(
    LoopConfig,
    "batch_size",
    "--batch-size",
    type=int,
    help="Crops per step (per process under torchrun).  [default: the model's: unet 4, "
    "bsrnn and se-bsrnn 2]",
)
@_option(
    LoopConfig,
    "patience",
    "--patience",
    type=int,
    help="Stop after this many epochs without validation improvement.",
)
@_option(LoopConfig, "device", "--device", type=click.Choice(DEVICES))
@_option(LoopConfig, "seed", "--seed", type=int)
@_option(
    LoopConfig,
    "max_minutes",
    "--max-minutes",
    type=float,
    help="Stop after the epoch that ends past this wall-clock budget.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder.  [default: runs/MODEL-TARGET]",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch.")
@click.pass_context
def train(ctx: click.Context, **options: Any) -> None:
    """Train a model on random crops of a rendered dataset.

    `--target all` trains one model for all four sources, or, for one-source models (bsrnn,
    se-bsrnn), one model per source in turn, in OUT/<source>.
    """
    for config in per_target_configs(train_config(options)):
        try:
            with stop_on_sigterm():
                fit(config, shlex.join(ctx.meta["argv"]))
        except KeyboardInterrupt as stopped:
            line, status = resume_line(stopped, config.loop.out, ctx.meta["argv"])
            click.echo(line, err=True)
            sys.exit(status)


@main.command("eval")
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
    f"{default(NMFConfig, 'chunk_seconds'):g} for nmf]",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@_option(NMFConfig, "components", "--components", type=int, help="nmf: NMF components.")
@_option(NMFConfig, "clusters", "--clusters", type=int, help="nmf: k-means clusters.")
@_option(NMFConfig, "seed", "--seed", type=int, help="nmf: seed of NMF init and k-means.")
def eval_command(
    run: Path | None,
    baseline: str | None,
    root: Path,
    subset: str,
    out: Path | None,
    chunk_seconds: float | None,
    device: str,
    **nmf: Any,
) -> None:
    """Separate every track of a MUSDB18 subset and score it with museval."""
    if baseline == "nmf":
        if run is not None:
            raise TrainError("--model nmf needs no --run: the NMF baseline trains nothing")
        if chunk_seconds is not None:
            nmf["chunk_seconds"] = chunk_seconds
        config = NMFConfig(**nmf)
        out = out or Path("runs") / "nmf" / f"eval-{subset}"
        out.mkdir(parents=True, exist_ok=True)
        click.echo(evaluate_nmf(root, subset, out, config))
        return
    if run is None:
        raise TrainError("eval needs --run RUN (a training run folder), or --model nmf")
    model, _ = load_run_model(run)
    out = out or run / f"eval-{subset}"
    out.mkdir(parents=True, exist_ok=True)
    chunk_seconds = CHUNK_SECONDS if chunk_seconds is None else chunk_seconds
    click.echo(evaluate_run(model, root, subset, out, resolve_device(device), chunk_seconds))


@main.command("separate")
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
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
def separate_command(
    run: Path, songs: tuple[Path, ...], out: Path, chunk_seconds: float, device: str
) -> None:
    """Write one wav per source for each song, at the song's rate, length and channels."""
    model, _ = load_run_model(run)
    for song in songs:
        for path in separate_song(model, song, out, resolve_device(device), chunk_seconds):
            click.echo(str(path))
