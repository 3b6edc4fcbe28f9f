"""One writer per output folder: an OS file lock, with a lease file where locks do not work.

Two renders into one `--out` would write the same items twice, or, with different settings,
mix two datasets under one header. So a writer (`msaug render`, `msaug prepare`) takes an
exclusive `flock` on `OUT/.msaug.lock`, writes its holder record (host, pid, a token) into it,
then downgrades to a shared lock that it keeps until it is done. Its workers take a shared lock
on the same file for every batch they write, after checking that the token is still their
run's. A second writer asks for the exclusive lock, which any shared holder blocks, including
an orphaned worker of a killed run that is still writing, and is refused at once with the
holder named. The kernel drops a process's locks when it dies, so a crash never leaves a
stale lock. A writer that finishes removes the lock file while it still holds it; a rival that
opened the file before it was removed finds its inode gone from the folder and is refused.

Some network filesystems (Lustre without `-o flock`, old NFS) answer `flock` with an error.
There the writer falls back to a lease: `OUT/.msaug.lease` holds the same record plus a
heartbeat that a thread renews every `HEARTBEAT_SECONDS`; a lease whose heartbeat is older
than `LEASE_SECONDS` is stale (its holder died) and is taken over (moved aside by a rename,
then created anew with O_EXCL, so of two takers exactly one wins). Workers check the token and
the heartbeat before each batch. A lease is weaker than a lock (a writer frozen for longer than
`LEASE_SECONDS` loses it), which docs/manifest.md says.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manifests.errors import ManifestError

LOCK_FILE = ".msaug.lock"
LEASE_FILE = ".msaug.lease"
HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 60.0
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
"""What `flock` answers on filesystems that do not support it."""


def _record(token: str, command: str) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": token,
        "command": command,
        "heartbeat": time.time(),
    }


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _fresh(lease: dict[str, Any]) -> bool:
    """A lease whose heartbeat is recent: its holder is alive (an empty record is not)."""
    return time.time() - float(lease.get("heartbeat", 0)) < LEASE_SECONDS


def _busy(root: Path, holder: dict[str, Any]) -> ManifestError:
    who = f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}"
    what = f", running `{holder['command']}`" if holder.get("command") else ""
    return ManifestError(
        f"{root} is being written by another msaug ({who}{what}); wait for it to finish, or "
        "stop it (it may be an orphaned worker of a killed run) and run this again"
    )


def _still_linked(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _move_stale_aside(root: Path, seen: dict[str, Any]) -> None:
    """Move the lease file that was read as `seen` (stale) out of the way. Of two takers only
    one rename succeeds; a taker that read the stale lease but renamed away a fresh one (the
    other taker's) puts it back and is refused."""
    path = root / LEASE_FILE
    aside = path.with_name(f"{LEASE_FILE}.tmp-stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        raise _busy(root, _read_record(path)) from None
    moved = _read_record(aside)
    if moved.get("token") != seen.get("token") or moved.get("heartbeat") != seen.get("heartbeat"):
        os.rename(aside, path)
        raise _busy(root, moved)
    aside.unlink(missing_ok=True)


def _write_atomic(path: Path, record: dict[str, Any]) -> None:
    temp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")  # is_temp
    temp.write_text(json.dumps(record))
    os.replace(temp, path)


@dataclass
class WriterLock:
    """Held by the one process that writes a folder; `token` goes to its workers."""

    root: Path
    token: str
    _fd: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None

    @classmethod
    def acquire(cls, root: str | Path, command: str = "") -> WriterLock:
        root = Path(root)
        lock = cls(root, uuid.uuid4().hex)
        path = root / LOCK_FILE
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ManifestError(
                f"cannot write to {root} ({exc.strerror}); choose a folder you can write to"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(root, _read_record(path)) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno not in _NO_FLOCK:
                raise ManifestError(f"cannot lock {path} ({exc}); check the folder") from exc
            lock._take_lease(command)
            return lock
        if not _still_linked(fd, path):  # its writer finished and removed it under us
            os.close(fd)
            raise _busy(root, {"command": "just finished; run this again"})
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_record(lock.token, command)).encode(), 0)
        try:  # not atomic: a rival may slip in between, and then this run is the one refused
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(root, _read_record(path)) from None
        lock._fd = fd
        return lock

    def _take_lease(self, command: str) -> None:
        path = self.root / LEASE_FILE
        holder = _read_record(path)
        if _fresh(holder):
            raise _busy(self.root, holder)
        if path.exists():
            _move_stale_aside(self.root, holder)
        try:  # exclusive creation: of two takers of a free folder only one succeeds
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise _busy(self.root, _read_record(path)) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(_record(self.token, command)))
        self._beat = threading.Thread(target=self._heartbeat, args=(command,), daemon=True)
        self._beat.start()

    def _heartbeat(self, command: str) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            path = self.root / LEASE_FILE  # the root moves when a temp folder is renamed
            if _read_record(path).get("token") != self.token:
                return  # taken over after a stall; workers will see the token change
            with contextlib.suppress(OSError):  # a full disk or a flaky mount: try again
                _write_atomic(path, _record(self.token, command))

    def release(self, remove: bool = False) -> None:
        """Drop the lock; with `remove`, first delete the lock file (a finished folder)."""
        if self._fd is not None:
            if remove:
                (self.root / LOCK_FILE).unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
        if self._beat is not None:
            if remove:
                (self.root / LOCK_FILE).unlink(missing_ok=True)
            self._stop.set()
            self._beat.join()
            self._beat = None
            path = self.root / LEASE_FILE
            if _read_record(path).get("token") == self.token:
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def worker_hold(root: str | Path, token: str) -> Iterator[None]:
    """Hold a shared lock on `root` while a worker writes one batch of the run `token`.

    Refuses to write when `root` is no longer held by that run (the writer was killed and
    another took the folder over), so an orphaned worker stops rather than mixing runs.
    """
    root = Path(root)
    path = root / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        raise ManifestError(
            f"{root} is no longer held by the run this worker belongs to (it finished or was "
            "stopped); the worker stops"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(root, _read_record(path)) from None
        except OSError as exc:
            if exc.errno not in _NO_FLOCK:
                raise
            lease = _read_record(root / LEASE_FILE)
            if lease.get("token") != token or not _fresh(lease):
                raise _busy(root, lease) from None
        else:
            holder = _read_record(path)
            if holder.get("token") != token:
                raise _busy(root, holder)
        yield
    finally:
        os.close(fd)


def holder(root: str | Path) -> dict[str, Any] | None:
    """Who writes `root` now (its lock record), or None if nobody does (no lock file, or one
    that nobody holds: its writer died)."""
    root = Path(root)
    path = root / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_record(path)
    except OSError as exc:
        if exc.errno not in _NO_FLOCK:
            raise
        lease = _read_record(root / LEASE_FILE)
        return lease if _fresh(lease) else None
    finally:
        os.close(fd)
    return None
