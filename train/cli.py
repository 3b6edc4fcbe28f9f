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

from train import distributed
from train.config import (
    RESAMPLE_ON,
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
from train.loop import fit, per_target_configs
from train.options import DEVICES, config_option
from train.stopping import resume_line, stop_on_sigterm


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
    required=True,
    help="Dataset folder written by `msaug render`, a MUSDB18-HQ root, or packed shards: "
    "their folder or URL (http(s)://, s3://, gs://, file://, or 'pipe:CMD {name}').",
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
@config_option(
    DataConfig,
    "target",
    "--target",
    type=click.Choice(TARGETS),
    help="Source to learn, or all four (one model, or one per source for bsrnn/se-bsrnn).",
)
@config_option(DataConfig, "where", "--where", help="Item selection, as for `msaug select`.")
@config_option(
    DataConfig,
    "segment",
    "--segment",
    type=float,
    show_default=False,
    help="Crop length in seconds.  [default: the model's recipe: 5 for unet, 3.04 (263 STFT "
    "frames) for bsrnn and se-bsrnn]",
)
@click.option("--mono", is_flag=True, help="Downmix to one channel (default: stereo).")
@config_option(DataConfig, "workers", "--workers", type=int, help="Data loader worker processes.")
@config_option(
    DataConfig,
    "resample_on",
    "--resample-on",
    type=click.Choice(RESAMPLE_ON),
    help="Where crops are resampled to the model's rate (the U-Net's 16 kHz): in the loader "
    "workers, or batch-wise on the training device; auto: the device on CUDA, else the loader.",
)
@config_option(
    DataConfig,
    "valid_root",
    "--valid-root",
    type=click.Path(path_type=Path),
    help="MUSDB18 root for validation.  [default: the dataset's validation songs (real, "
    "unaugmented); for a song root, musdb's validation split; held-out rendered items "
    "(--valid-fraction) only for a dataset without validation songs]",
)
@config_option(
    DataConfig,
    "valid_subset",
    "--valid-subset",
    type=click.Choice(["valid", "test"]),
    help="MUSDB18 tracks for validation: musdb's validation split of train, or test.",
)
@config_option(
    DataConfig,
    "valid_fraction",
    "--valid-fraction",
    type=float,
    help="Fraction of rendered items held out for validation when neither --valid-root nor "
    "the dataset's own validation songs are there (in-distribution: augmented items of the "
    "training songs).",
)
@config_option(
    DataConfig,
    "activity_db",
    "--activity-db",
    type=float,
    show_default=False,
    help="Source activity detection: redraw crops whose targets are all below this RMS "
    "level (dBFS); -inf turns it off.  [default: the model's recipe: off for unet, -50 for "
    "bsrnn]",
)
@click.option(
    "--online-gain",
    "gain",
    nargs=2,
    type=float,
    default=None,
    metavar="LOW HIGH",
    help="Online: random linear gain per source and crop, e.g. 0.25 1.25 (Demucs' range).",
)
@click.option("--channel-swap", is_flag=True, help="Online: swap each stem's channels, p = 0.5.")
@click.option("--polarity-flip", is_flag=True, help="Online: flip each stem's sign, p = 0.5.")
@click.option(
    "--remix",
    is_flag=True,
    help="Online: each source's crop from a random item and offset (remixing across items).",
)
@config_option(OptimConfig, "lr", "--lr", type=float)
@config_option(
    OptimConfig,
    "weight_decay",
    "--weight-decay",
    type=float,
    show_default=False,
    help="Adam's L2 penalty.  [default: the model's recipe: 1e-5 for unet, 0 for bsrnn]",
)
@config_option(OptimConfig, "lr_step", "--lr-step", type=int, help="Epochs between lr decays.")
@config_option(OptimConfig, "lr_gamma", "--lr-gamma", type=float, help="lr factor per decay.")
@config_option(OptimConfig, "clip", "--clip", type=float, help="Gradient norm clip.")
@config_option(LoopConfig, "epochs", "--epochs", type=int)
@config_option(
    LoopConfig,
    "batches_per_epoch",
    "--batches-per-epoch",
    type=int,
    show_default=False,
    help="Batches per epoch.  [default: the model's recipe: one pass over the training items "
    "for unet, 10000 for bsrnn]",
)
@config_option(
    LoopConfig,
    "batch_size",
    "--batch-size",
    type=int,
    help="Crops per step (per process under torchrun).  [default: the model's: unet 4, "
    "bsrnn and se-bsrnn 2]",
)
@config_option(
    LoopConfig,
    "patience",
    "--patience",
    type=int,
    help="Stop after this many epochs without validation improvement.",
)
@config_option(LoopConfig, "device", "--device", type=click.Choice(DEVICES))
@config_option(LoopConfig, "seed", "--seed", type=int)
@config_option(
    LoopConfig,
    "max_minutes",
    "--max-minutes",
    type=float,
    help="Stop after the epoch that ends past this wall-clock budget.",
)
@config_option(
    LoopConfig,
    "valid_sdr",
    "--valid-sdr",
    is_flag=True,
    show_default=False,
    help="Also score each validation track's uSDR every epoch (log.csv's valid_usdr); costs "
    "one more forward pass over the validation songs.",
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
    try:
        for config in per_target_configs(train_config(options)):
            try:
                with stop_on_sigterm():
                    fit(config, shlex.join(ctx.meta["argv"]))
            except KeyboardInterrupt as stopped:
                line, status = resume_line(stopped, config.loop.out, ctx.meta["argv"])
                click.echo(line, err=True)
                sys.exit(status)
    finally:
        distributed.shutdown()


from train.tool_commands import compare_command, eval_command, separate_command  # noqa: E402

main.add_command(compare_command)
main.add_command(eval_command)
main.add_command(separate_command)
