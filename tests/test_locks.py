"""One writer per folder, content-based source identity, and the source checksum index."""

from __future__ import annotations

import errno
import json
import multiprocessing
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from sources_factory import make_source_root

from augment import source_index
from augment.render import RenderSettings, render_dataset
from augment.source_index import INDEX_FILE, index_sources
from manifests import Dataset, ManifestError
from manifests import lock as lock_module
from manifests.derive import TEMP_FOLDER_MARK, new_folder
from manifests.lock import LEASE_FILE, LOCK_FILE, WriterLock, worker_hold
from manifests.verify import verify

SR = 22050


def _settings(root: Path, **changes) -> RenderSettings:
    base = {"root": str(root), "seconds": 0.5, "sample_rate": SR, "quality": "fast"}
    return RenderSettings(**{**base, **changes})


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    first = WriterLock.acquire(tmp_path / "out", "msaug render --seed 0")
    with pytest.raises(ManifestError, match=r"pid \d+, running `msaug render --seed 0`"):
        WriterLock.acquire(tmp_path / "out", "msaug render --seed 1")
    first.release()
    WriterLock.acquire(tmp_path / "out").release()


def _hold_as_worker(root: str, token: str, ready, done) -> None:
    with worker_hold(root, token):
        ready.set()
        done.wait(30)


def test_a_worker_still_writing_blocks_a_new_writer(tmp_path):
    """An orphaned worker of a killed run keeps the folder until its batch is written."""
    out = tmp_path / "out"
    run = WriterLock.acquire(out)
    context = multiprocessing.get_context("fork")
    ready, done = context.Event(), context.Event()
    worker = context.Process(target=_hold_as_worker, args=(str(out), run.token, ready, done))
    worker.start()
    assert ready.wait(30)
    run.release()  # what the kernel does when the writer is killed: its lock is dropped
    with pytest.raises(ManifestError, match="being written by another msaug"):
        WriterLock.acquire(out)
    done.set()
    worker.join(30)
    WriterLock.acquire(out).release()


def test_a_worker_of_another_run_is_refused(tmp_path):
    out = tmp_path / "out"
    run = WriterLock.acquire(out)
    with worker_hold(out, run.token):
        pass
    with pytest.raises(ManifestError, match="being written"), worker_hold(out, "stale-token"):
        pass
    run.release(remove=True)
    assert not (out / LOCK_FILE).exists()
    with pytest.raises(ManifestError, match="no longer held"), worker_hold(out, run.token):
        pass


def test_without_flock_a_lease_with_heartbeat_is_used(tmp_path, monkeypatch):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", no_flock)
    out = tmp_path / "out"
    first = WriterLock.acquire(out, "first")
    lease = json.loads((out / LEASE_FILE).read_text())
    assert lease["token"] == first.token and lease["command"] == "first"
    with pytest.raises(ManifestError, match="running `first`"):
        WriterLock.acquire(out, "second")
    with worker_hold(out, first.token):
        pass
    with pytest.raises(ManifestError), worker_hold(out, "other"):
        pass
    first._stop.set()  # the holder freezes: no more heartbeats
    first._beat.join()
    lease["heartbeat"] = time.time() - lock_module.LEASE_SECONDS - 1
    (out / LEASE_FILE).write_text(json.dumps(lease))
    taker = WriterLock.acquire(out, "taker")  # a stale lease is taken over
    with pytest.raises(ManifestError), worker_hold(out, first.token):
        pass
    taker.release()
    assert not (out / LEASE_FILE).exists()


def test_render_into_a_held_folder_writes_nothing(source_root, tmp_path):
    out = tmp_path / "out"
    held = WriterLock.acquire(out, "someone else")
    with pytest.raises(ManifestError, match="someone else"):
        render_dataset(_settings(source_root), out, n=2, jobs=1, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]
    held.release()
    render_dataset(_settings(source_root), out, n=2, jobs=1, progress=False)
    assert verify(out).ok and not (out / LOCK_FILE).exists()


def test_two_concurrent_renders_exactly_one_proceeds(source_root, tmp_path):
    out = tmp_path / "out"
    base = [
        sys.executable, "-m", "augment", "render", "--root", str(source_root),
        "--out", str(out), "--n", "6", "--seconds", "0.5", "--sr", str(SR),
        "--quality", "fast", "--jobs", "1", "--batch-size", "1", "--quiet",
    ]  # fmt: skip
    commands = [[*base, "--seed", str(seed)] for seed in (0, 1)]
    runs = [subprocess.Popen(c, stderr=subprocess.PIPE, text=True) for c in commands]
    codes = [run.wait(120) for run in runs]
    assert sorted(codes) == [0, 2], [r.stderr.read() for r in runs]
    loser = runs[codes.index(2)].stderr.read()
    assert "being written by another msaug" in loser or "other settings" in loser
    winner_seed = codes.index(0)
    dataset = Dataset.open(out)
    assert dataset.header["identity"]["settings"]["seed"] == winner_seed
    assert set(dataset.items["run_seed"]) == {winner_seed} and verify(out).ok


def test_a_live_temp_folder_blocks_a_second_derived_write(tmp_path):
    out = tmp_path / "sub"
    live = tmp_path / f".sub{TEMP_FOLDER_MARK}1-abc"
    held = WriterLock.acquire(live)
    with pytest.raises(ManifestError, match="is writing"), new_folder(out):
        pass
    held.release()
    with new_folder(out) as folder:
        (folder / "x").write_text("x")
    assert not live.exists() and (out / "x").is_file() and not (out / LOCK_FILE).exists()


# -- sources ------------------------------------------------------------------------------------


def test_the_index_hashes_each_file_once(tmp_path, monkeypatch):
    root = make_source_root(tmp_path / "src", tracks=2, seconds=1.0, subsets=("train",))
    hashed = []
    original = source_index.file_checksum
    monkeypatch.setattr(source_index, "file_checksum", lambda p: hashed.append(p) or original(p))
    n_files, written = index_sources(root)
    assert written and n_files == 8 and len(hashed) == 8
    index_sources(root)
    assert len(hashed) == 8, "an unchanged file was hashed again"
    target = root / "train" / "Track 01" / "bass.wav"
    audio, rate = sf.read(target, dtype="float32")
    sf.write(target, audio * 0.5, rate, subtype="FLOAT")
    index_sources(root)
    assert hashed[8:] == [target]
    entry = json.loads((root / INDEX_FILE).read_text())["files"]["train/Track 01/bass.wav"]
    assert entry["checksum"] == original(target)


def test_changed_source_audio_is_refused_on_resume_naming_the_file(tmp_path):
    root = make_source_root(tmp_path / "src", tracks=2, seconds=3.0, sample_rate=SR)
    out = tmp_path / "out"
    render_dataset(_settings(root), out, n=2, jobs=1, progress=False)
    target = root / "train" / "Track 00" / "vocals.wav"
    audio, rate = sf.read(target, dtype="float32")
    sf.write(target, audio * 0.9, rate, subtype="FLOAT")  # same length, rate and name
    with pytest.raises(ManifestError, match=re.escape("train/Track 00/vocals.wav")):
        render_dataset(_settings(root), out, n=3, jobs=1, progress=False)


def test_the_same_songs_at_another_path_share_one_identity(tmp_path):
    import shutil

    root = make_source_root(tmp_path / "a", tracks=2, seconds=3.0, sample_rate=SR)
    moved = tmp_path / "b"
    shutil.copytree(root, moved)
    out = tmp_path / "out"
    render_dataset(_settings(root), out, n=2, jobs=1, progress=False)
    summary = render_dataset(_settings(moved), out, n=3, jobs=1, progress=False)
    assert (summary.skipped, summary.rendered) == (2, 1) and verify(out).ok


def test_of_two_takers_of_a_stale_lease_exactly_one_wins(tmp_path):
    """The second taker read the lease while it was stale, but the first has replaced it since:
    the second must not move the first's fresh lease away."""
    out = tmp_path / "out"
    out.mkdir()
    stale = {"host": "h", "pid": 1, "token": "dead", "heartbeat": 0.0}
    fresh = {"host": "h", "pid": 2, "token": "first", "heartbeat": time.time()}
    (out / LEASE_FILE).write_text(json.dumps(fresh))
    with pytest.raises(ManifestError, match="pid 2"):
        lock_module._move_stale_aside(out, stale)
    assert json.loads((out / LEASE_FILE).read_text()) == fresh
    (out / LEASE_FILE).write_text(json.dumps(stale))
    lock_module._move_stale_aside(out, stale)  # the first taker: the stale lease goes
    assert not (out / LEASE_FILE).exists()
    with pytest.raises(ManifestError):  # and a second taker finds nothing to move
        lock_module._move_stale_aside(out, stale)
