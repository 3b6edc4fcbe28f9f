"""`msaug`: the command-line face of the render stage and of dataset tools.

Each command is a thin layer over a library function; user errors become one line on stderr
and exit status 2.
"""

from __future__ import annotations

import sys

import click

from augment.errors import USER_ERRORS


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            click.echo(f"msaug: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="msaug")
def main() -> None:
    """Offline data augmentation for music source separation."""


from augment.commands import index, prepare, render, rerender  # noqa: E402
from augment.recipe_commands import recipe_command  # noqa: E402

main.add_command(index)
main.add_command(recipe_command)
main.add_command(prepare)
main.add_command(render)
main.add_command(rerender)

from augment.dataset_commands import DATASET_COMMANDS  # noqa: E402

for _command in DATASET_COMMANDS:
    main.add_command(_command)

from augment.demo.command import demo_data  # noqa: E402

main.add_command(demo_data)
