"""Stopping a training run on SIGTERM or Ctrl-C without losing more than the current epoch.

Checkpoints are written once per epoch, atomically (`train.checkpoint.save`), so at any moment
RUN/last.pt holds the last finished epoch whole. A scheduler's SIGTERM therefore only has to
stop the run and say so: the signal becomes a KeyboardInterrupt (Python's default for SIGTERM
kills the process without a word), and `mstrain` prints which folder to resume and how.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from collections.abc import Iterator
from pathlib import Path


class TrainingStopped(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM raises `TrainingStopped` inside the block, as Ctrl-C raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise TrainingStopped(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_line(stopped: KeyboardInterrupt, out: Path, argv: list[str]) -> tuple[str, int]:
    """The message and exit status for a run stopped by `stopped`."""
    signum = getattr(stopped, "signum", signal.SIGINT)
    command = argv if "--resume" in argv else [*argv, "--resume"]
    return (
        f"interrupted by {signal.Signals(signum).name}: {out}/last.pt keeps the last finished "
        f"epoch (this epoch is lost); resume with: {shlex.join(command)}",
        128 + signum,
    )
