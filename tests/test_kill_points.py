"""A kill at every write, rename and delete of the dataset tools and of checkpoint saving.

Each tool runs once to count the file-system calls it makes, then once per call with a kill
in place of that call; the same command run again must finish byte-identical to an
uninterrupted run, leave nothing hidden beside its output, and verify. (The render's renames
are covered one by one in test_crash_points.py; here its deletes are.)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from augment.render import RenderSettings, render_dataset
from manifests import Dataset
from manifests.derive import SETUP_MARK
from manifests.lock import LOCK_FILE
from manifests.merge import merge
from manifests.pack import pack, unpack
from manifests.subset import write_selection
from manifests.verify import verify
from train import checkpoint

SR = 22050
CALLS = (
    (os, "replace"),
    (os, "unlink"),
    (os, "rmdir"),
    (os, "link"),
    (shutil, "copyfile"),
    (shutil, "rmtree"),
)
"""The calls that write, rename or delete: every tool's file changes go through these."""


class Kill(BaseException):
    """Not an Exception: no handler of the tools swallows it, as none swallows SIGKILL."""


def _with_kill(monkeypatch, point: int | None) -> list[str]:
    """Patch every call in CALLS to count; the `point`-th raises Kill instead of running."""
    seen: list[str] = []
    for module, name in CALLS:
        original = getattr(module, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            if len(seen) == point:
                raise Kill(f"killed at {_name} {point}")
            seen.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    return seen


def _files(folder: Path) -> dict[str, bytes]:
    """Every file's bytes but dataset.json's (it records times) and a lock record's: a kill
    between a finished folder's rename and its lock's removal leaves one, inert (no process
    holds its lock)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("dataset.json", LOCK_FILE)
    }


def _every_kill_point(
    monkeypatch, tmp_path: Path, run: Callable[[Path], None], resumable: bool = False
) -> int:
    """Run `run(out)` killed at each call in turn, then again unharmed (a derived folder that
    the kill left finished is not: its rerun is refused like any finished one's); compare each
    result with an uninterrupted run's. Returns the number of kill points."""
    reference = tmp_path / "reference" / "out"
    reference.parent.mkdir(parents=True)
    with monkeypatch.context() as patch:
        seen = _with_kill(patch, None)
        run(reference)
        points = len(seen)
    expected = _files(reference)
    for point in range(points):
        out = tmp_path / f"kill-{point}" / "out"
        out.parent.mkdir(parents=True)
        with monkeypatch.context() as patch:
            _with_kill(patch, point)
            with pytest.raises(Kill):
                run(out)
        if resumable or not (out / "dataset.json").exists():
            run(out)  # the same command again, unharmed
        assert _files(out) == expected, f"kill point {point} changed the output"
        left = [p.name for p in out.parent.iterdir() if p.name != "out"]
        # A setup folder (made and locked before it gets its temp name) is removed by a later
        # run only after SETUP_SECONDS: until then a living writer may be inside that window.
        assert all(SETUP_MARK in name for name in left), f"point {point} left {left}"
    return points


def test_pack_unpack_select_and_merge_survive_a_kill_at_every_call(
    small_render, monkeypatch, tmp_path
):
    def packed(out: Path) -> None:
        pack(small_render, out, shard_size=200_000)

    assert _every_kill_point(monkeypatch, tmp_path / "pack", packed) > 5
    shards = tmp_path / "shards"
    pack(small_render, shards, shard_size=200_000)

    def unpacked(out: Path) -> None:
        unpack(shards, out)
        assert verify(out).ok

    assert _every_kill_point(monkeypatch, tmp_path / "unpack", unpacked) > 5

    def selected(out: Path) -> None:
        write_selection(Dataset.open(small_render).select("item_index < 2"), out, copy=True)
        assert verify(out).ok

    assert _every_kill_point(monkeypatch, tmp_path / "select", selected) > 5

    def merged(out: Path) -> None:
        merge([small_render, tmp_path / "select" / "reference" / "out"], out, copy=True)
        assert verify(out).ok

    assert _every_kill_point(monkeypatch, tmp_path / "merge", merged) > 5


def test_a_render_survives_a_kill_at_every_delete(source_root, monkeypatch, tmp_path):
    """A render deletes lock records, folded parts and leftovers; renames are covered
    elsewhere. Killed at each of its calls, the rerun ends byte-identical and verified."""
    settings = RenderSettings(root=str(source_root), seconds=0.5, sample_rate=SR, quality="fast")

    def rendered(out: Path) -> None:
        render_dataset(settings, out, n=2, jobs=1, batch_size=1, progress=False)
        assert verify(out).ok

    render_dataset(settings, tmp_path / "warm", n=1, jobs=1, progress=False)  # source index
    assert _every_kill_point(monkeypatch, tmp_path / "render", rendered, resumable=True) > 10


def test_a_checkpoint_save_killed_at_any_call_keeps_the_last_good_one(monkeypatch, tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"epoch": 1})
    with monkeypatch.context() as patch:
        seen = _with_kill(patch, None)
        checkpoint.save(tmp_path / "probe.pt", {"epoch": 2})
    assert seen  # the save renames into place
    for point in range(len(seen)):
        checkpoint.save(path, {"epoch": 1})
        with monkeypatch.context() as patch:
            _with_kill(patch, point)
            with pytest.raises(Kill):
                checkpoint.save(path, {"epoch": 2})
        assert torch.load(path)["epoch"] in (1, 2)  # the old or the new one, never torn
        checkpoint.remove_stale_temps(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "probe.pt"]
