"""Stopping a long render cleanly: SIGINT / SIGTERM in the parent, a watchdog in each worker.

Schedulers stop jobs with SIGTERM (SLURM preemption, `docker stop`, `kill`), people with
Ctrl-C. Python's default SIGTERM kills the parent on the spot and leaves its loky workers
rendering items that no manifest will list. Here both signals raise `Interrupted` while the
parent waits for a batch (never in the middle of writing a manifest part), joblib then kills
the workers of unfinished batches, and the render folds every finished batch into a valid
dataset and says how to resume.

A worker whose parent dies without that chance (SIGKILL, OOM killer) notices within
`WATCH_SECONDS` that it was re-parented and exits at once, so it neither outlives the run nor
writes after it; an unfinished item's files are temp files the next run removes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

WATCH_SECONDS = 0.5
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A render stopped by a signal; a KeyboardInterrupt, so joblib aborts its workers."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class StopFlag:
    """Set by the handlers; raises only where the render can stop cleanly."""

    signum: int | None = None
    waiting: bool = False

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)

    @contextlib.contextmanager
    def waiting_for_results(self) -> Iterator[None]:
        self.check()
        self.waiting = True
        try:
            yield
        finally:
            self.waiting = False


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Route SIGINT and SIGTERM to a `StopFlag` for the block (main thread only; elsewhere,
    as in a test runner's worker thread, the flag is never set)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        first = flag.signum is None
        flag.signum = signum
        if flag.waiting or not first:  # a second signal stops even a write in progress
            raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


_watching: set[int] = set()


def watch_parent(parent_pid: int | None) -> None:
    """In a worker process: exit as soon as `parent_pid` is no longer its parent.

    Started once per worker process by its first batch. Not started where the batch runs in
    the parent itself (`--jobs 1`) or on a remote cluster worker (`parent_pid` None).
    """
    if parent_pid is None or os.getpid() == parent_pid or parent_pid in _watching:
        return
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent is already gone
    _watching.add(parent_pid)
    for sig in _SIGNALS:  # a terminal's Ctrl-C or a scheduler's SIGTERM reaches the whole
        signal.signal(sig, signal.SIG_IGN)  # group: the parent decides; joblib SIGKILLs us

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="msaug-parent-watch", daemon=True).start()
