"""Click options shared by the mstrain commands."""

from __future__ import annotations

from typing import Any

import click

from train.config import default

DEVICES = ("auto", "cpu", "cuda")


def config_option(cls: type, name: str, flag: str, **kwargs: Any):
    """A click option whose default is the config field's own."""
    kwargs.setdefault("show_default", True)
    return click.option(flag, name, default=default(cls, name), **kwargs)
