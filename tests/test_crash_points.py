"""A crash at every write and rename of a render: the rerun repairs the folder and ends
byte-identical to an uninterrupted render, with a passing verify."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from augment.render import RenderSettings, render_dataset
from manifests import Dataset
from manifests.sidecar import ROWS_FILE
from manifests.verify import verify

SR = 22050


class Crash(BaseException):
    """A kill: not an Exception, so no handler of the render swallows it."""


def _settings(root) -> RenderSettings:
    return RenderSettings(root=str(root), seconds=0.5, sample_rate=SR, quality="fast")


def _render(root, out: Path) -> None:
    render_dataset(_settings(root), out, n=2, jobs=1, batch_size=1, progress=False)


@pytest.fixture(scope="module")
def reference(source_root, tmp_path_factory) -> tuple[str, int]:
    """The digest of an uninterrupted render, and how many renames it makes."""
    scratch = tmp_path_factory.mktemp("ref")
    _render(source_root, scratch / "warm")  # writes the source index once, as a user's first run
    out = scratch / "ds"
    calls = []
    original = os.replace

    def counting(*args, **kwargs):
        calls.append(args[1])
        return original(*args, **kwargs)

    os.replace = counting
    try:
        _render(source_root, out)
    finally:
        os.replace = original
    return Dataset.open(out).header["digest"], len(calls)


def test_every_rename_is_a_safe_crash_point(source_root, reference, tmp_path):
    digest, renames = reference
    assert renames > 10  # audio files, manifest parts, tables, dataset.json
    original = os.replace
    for point in range(renames):
        out = tmp_path / f"crash-{point}"
        os.replace = _crash_at(point, original)
        try:
            with pytest.raises(Crash):
                _render(source_root, out)
        finally:
            os.replace = original
        _render(source_root, out)
        assert Dataset.open(out).header["digest"] == digest, f"crash point {point}"
        assert verify(out).ok, f"crash point {point}"
        leftovers = [
            p for p in out.rglob("*") if ".tmp-" in p.name or p.name in ("parts", ROWS_FILE)
        ]
        assert leftovers == [], f"crash point {point}: {leftovers}"


def _crash_at(point: int, original):
    """os.replace that raises Crash instead of its `point`-th rename."""
    count = iter(range(10**6))

    def crashing(*args, **kwargs):
        if next(count) == point:
            raise Crash(f"killed before rename {point}")
        return original(*args, **kwargs)

    return crashing
