"""Renders stopped by SIGTERM, SIGINT or SIGKILL: a valid partial dataset, no lingering
workers, and a resume that ends byte-identical to an uninterrupted render."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sources_factory import make_source_root

from manifests import Dataset
from manifests.schema import PARTS_DIR
from manifests.verify import verify

SR = 22050
N = 24


@pytest.fixture(scope="module")
def long_sources(tmp_path_factory) -> Path:
    return make_source_root(
        tmp_path_factory.mktemp("src"), tracks=3, seconds=12.0, sample_rate=SR, subsets=("train",)
    )


def _command(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "augment", "render", "--root", str(root), "--out", str(out),
        "--n", str(N), "--seconds", "2", "--sr", str(SR), "--quality", "best",
        "--batch-size", "1", "--quiet", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(long_sources, tmp_path_factory) -> str:
    """The digest of the same render, uninterrupted, with one worker."""
    out = tmp_path_factory.mktemp("ref") / "ds"
    subprocess.run(_command(long_sources, out, "--jobs", "1"), check=True)
    return Dataset.open(out).header["digest"]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _start_and_wait_for_parts(command: list[str], out: Path) -> subprocess.Popen:
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    parts = out / PARTS_DIR / "items"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("*.parquet"))) < 3:
        time.sleep(0.05)
    assert process.poll() is None, "the render finished before the signal"
    return process


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_leaves_a_valid_dataset_and_a_resume_command(
    long_sources, reference, tmp_path, sig
):
    out = tmp_path / "ds"
    command = _command(long_sources, out, "--jobs", "2")
    process = _start_and_wait_for_parts(command, out)
    workers = _children(process.pid)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + sig, stderr
    assert _wait_gone(workers, 10) == []
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted by {sig.name}: ") and "resume with: " in last
    partial = Dataset.open(out)
    assert 0 < len(partial) < N and verify(out).ok
    assert partial.header["provenance"]["last_run"]["interrupted"] == sig.name
    assert partial.header["provenance"]["last_run"]["requested"] == N
    subprocess.run(command, check=True)
    assert Dataset.open(out).header["digest"] == reference and verify(out).ok


def test_workers_stop_when_the_parent_is_killed(long_sources, reference, tmp_path):
    out = tmp_path / "ds"
    command = _command(long_sources, out, "--jobs", "2")
    process = _start_and_wait_for_parts(command, out)
    workers = [
        p for p in _children(process.pid) if "loky" in Path(f"/proc/{p}/cmdline").read_text()
    ]
    assert workers
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert _wait_gone(workers, 10) == []
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    time.sleep(1.0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == files
    subprocess.run(command, check=True)
    assert Dataset.open(out).header["digest"] == reference and verify(out).ok
