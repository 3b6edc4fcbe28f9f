"""Finished items that no manifest part lists (a run stopped mid-batch, a smaller --n) are
proven by their sidecars and folded in, never rendered again; folders nothing proves (no
sidecar, a lying or hostile one) are removed and rendered again; validation songs and a user's
own folders stay. Every ending is byte-identical to an uninterrupted render and verifies."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sources_factory import make_source_root

import augment.batches
import augment.render
from augment.cli import main as msaug
from augment.config import load_config, parse_mode
from augment.leftovers import Drawn, Leftovers
from augment.rebuild import rebuild_dataset
from augment.recipe import write_recipe
from augment.render import RenderSettings, render_dataset
from manifests import Dataset, DatasetWriter
from manifests.lock import LOCK_FILE
from manifests.sidecar import ROWS_FILE
from manifests.verify import verify

SR = 22050
N = 8


class Crash(BaseException):
    """A kill: not an Exception, so no handler of the render swallows it."""


def _settings(root: Path, **changes) -> RenderSettings:
    base = {"root": str(root), "seconds": 0.5, "sample_rate": SR, "quality": "fast"}
    return RenderSettings(**{**base, **changes})


def _render(root: Path, out: Path, n: int = N, **changes):
    return render_dataset(
        _settings(root, **changes), out, n=n, jobs=1, batch_size=4, progress=False, valid_count=1
    )


def _files(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (audio, Parquet tables, hidden ones) but dataset.json's (it records
    times) and the lock record's."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("dataset.json", LOCK_FILE)
    }


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def _crash_before_part(monkeypatch, key: str) -> None:
    """The parent dies just before writing the part `key`: its items are whole on disk."""
    original = DatasetWriter.write_part

    def dies(self, part, *args, **kwargs):
        if part == key:
            raise Crash(f"killed before part {part}")
        return original(self, part, *args, **kwargs)

    monkeypatch.setattr(DatasetWriter, "write_part", dies)


@pytest.fixture(scope="module")
def reference(source_root, tmp_path_factory) -> Path:
    """An uninterrupted render of 8 items and one validation song."""
    out = tmp_path_factory.mktemp("reference") / "ds"
    _render(source_root, out)
    return out


@pytest.fixture(scope="module")
def crashed(source_root, tmp_path_factory) -> Path:
    """The same render, killed before the part of its second batch (items 4-7): those four
    items are whole, each with its sidecar, and no part lists them. Tests copy it."""
    out = tmp_path_factory.mktemp("crashed") / "ds"
    with pytest.MonkeyPatch.context() as patch:
        _crash_before_part(patch, "0000004")
        with pytest.raises(Crash):
            _render(source_root, out)
    assert sorted(p.name for p in (out / "train" / "0000004").iterdir()) == [
        ROWS_FILE,
        "bass.wav",
        "drums.wav",
        "mixture.wav",
        "other.wav",
        "vocals.wav",
    ]
    return out


def _copy(crashed: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(crashed, out, symlinks=True)
    return out


def _assert_finished_like(out: Path, reference: Path) -> None:
    assert _files(out) == _files(reference)
    assert Dataset.open(out).header["digest"] == Dataset.open(reference).header["digest"]
    assert verify(out).ok
    assert not list(out.rglob(ROWS_FILE)), "a sidecar outlived its part"


def test_items_whole_on_disk_before_their_part_are_folded_not_rendered_again(
    source_root, reference, tmp_path, monkeypatch
):
    """Killed inside a batch: items 4 and 5 are whole with sidecars, 6 has its files but
    no sidecar yet (killed before it), 7 was never started."""
    out = tmp_path / "ds"
    original = augment.batches.render_item

    def dies_after_item_6(plan, *args, **kwargs):
        rows = original(plan, *args, **kwargs)
        if plan.index == 6:
            raise Crash("killed after item 6's files, before its sidecar")
        return rows

    with monkeypatch.context() as patch:
        patch.setattr(augment.batches, "render_item", dies_after_item_6)
        with pytest.raises(Crash):
            _render(source_root, out)
    assert not (out / "train" / "0000006" / ROWS_FILE).exists()
    kept = {name: _stamps(out / "train" / name) for name in ("0000004", "0000005")}
    song = next(p for p in (out / "train").iterdir() if not p.name.isdigit())
    song_stamps = _stamps(song)

    summary = _render(source_root, out)
    assert (summary.folded, summary.removed, summary.rendered) == (2, 1, 2)
    assert (summary.skipped, summary.present, summary.valid_songs) == (6, 8, 1)
    for name, stamps in kept.items():  # the very same files: not rendered again
        assert _stamps(out / "train" / name) == {k: v for k, v in stamps.items() if k != ROWS_FILE}
    assert _stamps(song) == song_stamps
    _assert_finished_like(out, reference)


def test_a_smaller_n_folds_the_finished_items_beyond_it(source_root, reference, crashed, tmp_path):
    out = _copy(crashed, tmp_path)
    args = [
        "render", "--root", str(source_root), "--out", str(out), "--n", "4", "--seconds", "0.5",
        "--sr", str(SR), "--quality", "fast", "--jobs", "1", "--batch-size", "4",
        "--valid-count", "1", "--quiet",
    ]  # fmt: skip
    result = CliRunner().invoke(msaug, args)
    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()[:2]
    assert first.startswith("rendered 0 items (4 already done)")
    assert "; 4 finished item folders that no manifest part listed were folded in" in first
    assert second.startswith("dataset: 8 items (4 requested) and 1 validation songs")
    last_run = Dataset.open(out).header["provenance"]["last_run"]
    assert (last_run["requested"], last_run["present"], last_run["folded"]) == (4, 8, 4)
    _assert_finished_like(out, reference)

    again = CliRunner().invoke(msaug, args)  # nothing left to fold; the items stay
    assert again.exit_code == 0 and "folded" not in again.output.splitlines()[0]
    last_run = Dataset.open(out).header["provenance"]["last_run"]
    assert (last_run["requested"], last_run["present"], last_run["folded"]) == (4, 8, 0)
    _assert_finished_like(out, reference)


@pytest.fixture(scope="module")
def seed1_item(source_root, tmp_path_factory) -> Path:
    """Item 4's folder from a render with seed 1, killed the same way: whole and consistent
    with its own sidecar, but another render's."""
    other = tmp_path_factory.mktemp("seed1") / "ds"
    with pytest.MonkeyPatch.context() as patch:
        _crash_before_part(patch, "0000004")
        with pytest.raises(Crash):
            _render(source_root, other, seed=1)
    return other / "train" / "0000004"


def _edit_rows(folder: Path, change) -> None:
    path = folder / ROWS_FILE
    if isinstance(change, str):
        path.write_text(change)
        return
    rows = json.loads(path.read_text())
    change(rows)
    path.write_text(json.dumps(rows))


def _set(*keys, value):
    def change(rows):
        target = rows
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _stems_of_item_5(rows):
    for stem in rows["stems"]:
        stem["item_id"] = "0000005"


def _add_effect(entry):
    def change(rows):
        rows["stems"][0]["effects"].append(entry)

    return change


def _a_stem_twice(rows):
    rows["stems"][1] = rows["stems"][0]


LIES = {
    "a checksum": _set("item", "checksum", value="0" * 32),
    "a stem's size": _set("stems", 1, "bytes", value=1234),
    "no sidecar": "delete",
    "a truncated stem": "truncate",
    "an extra file": "extra",
    "a sidecar from seed 1": "seed1",
    "seed 1 with this render's fingerprint": "seed1-forged",
    "item 5's folder as item 4": "item5",
    "item 5's folder as item 4, with item 4's seeds": "item5-seeded",
    "another mode": _set("item", "mode", value="coherent"),
    "another gain": _set("stems", 0, "gain_db", value=1.5),
    "another length in seconds": _set("item", "seconds", value=0.25),
    "another channel count": _set("item", "channels", value=1),
    "a source this render does not draw from": _set("stems", 0, "source_track", value="Nope"),
    "an effect left out": _set("stems", 1, "effects", value=[]),
}


def _as_item_4(folder: Path, seeds: dict | None) -> None:
    """`folder` holds a copy of item 5: its rows rewritten to say item 4 (ids, index, paths),
    and with `seeds` (item 4's run and item seeds) as well if given."""

    def change(rows):
        item = rows["item"]
        item.update(item_id="0000004", item_index=4, **(seeds or {}))
        item["mixture_path"] = item["mixture_path"].replace("0000005", "0000004")
        for stem in rows["stems"]:
            stem["item_id"] = "0000004"
            stem["path"] = stem["path"].replace("0000005", "0000004")

    _edit_rows(folder, change)


@pytest.mark.parametrize("lie", list(LIES))
def test_a_folder_its_sidecar_does_not_prove_is_removed_and_rendered_again(
    source_root, reference, crashed, seed1_item, tmp_path, lie
):
    out = _copy(crashed, tmp_path)
    folder = out / "train" / "0000004"
    how = LIES[lie]
    if how == "delete":
        (folder / ROWS_FILE).unlink()
    elif how == "truncate":
        with open(folder / "vocals.wav", "r+b") as handle:
            handle.truncate(100)
    elif how == "extra":
        (folder / "notes.txt").write_text("mine")
    elif how in ("item5", "item5-seeded"):
        shutil.rmtree(folder)
        shutil.copytree(out / "train" / "0000005", folder)
        own = Dataset.open(reference).items.set_index("item_id").loc["0000004"]
        seeds = {"run_seed": int(own["run_seed"]), "item_seed": int(own["item_seed"])}
        _as_item_4(folder, seeds if how == "item5-seeded" else None)
    elif how in ("seed1", "seed1-forged"):
        shutil.rmtree(folder)
        shutil.copytree(seed1_item, folder)
        if how == "seed1-forged":
            ours = json.loads((out / "train" / "0000005" / ROWS_FILE).read_text())
            _edit_rows(folder, _set("fingerprint", value=ours["fingerprint"]))
    else:
        _edit_rows(folder, how)
    summary = _render(source_root, out)
    assert (summary.folded, summary.removed, summary.rendered) == (3, 1, 1)
    _assert_finished_like(out, reference)


HOSTILE = {
    "a stem path out of the dataset": _set("stems", 0, "path", value="../x.wav"),
    "an absolute mixture path": _set("item", "mixture_path", value="/etc/hostname"),
    "another item's id": _set("item", "item_id", value="0000005"),
    "another item's index": _set("item", "item_index", value=5),
    "stems of another item": _stems_of_item_5,
    "a stem twice": _a_stem_twice,
    "an unknown field": _set("item", "owner", value="x"),
    "a string for a number": _set("item", "bytes", value="12"),
    "NaN for a level": _set("item", "mixture_peak", value=float("nan")),
    "a number no float holds": _set("item", "mixture_peak", value=10**400),
    "an int beyond int64": _set("item", "attempts", value=2**70),
    "no attempt": _set("item", "attempts", value=0),
    "an effect the dataset does not declare": _add_effect({"kind": "evil", "params": {}}),
    "an effect parameter it does not have": _set(
        "stems", 1, "effects", 0, "params", "volume", value=11.0
    ),
    "an effect parameter out of its range": _set(
        "stems", 1, "effects", 0, "params", "semitones", value=1e6
    ),
    "not JSON": "{ rows",
    "nesting too deep": "[" * 100_000,
    "a list": "[]",
}


@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_a_hostile_sidecar_is_never_trusted(source_root, reference, crashed, tmp_path, hostile):
    out = _copy(crashed, tmp_path)
    outside = out / "../x.wav"  # the file "../x.wav" names, relative to the dataset
    assert outside.resolve() == (tmp_path / "x.wav").resolve()
    outside.write_bytes(b"not yours")
    _edit_rows(out / "train" / "0000004", HOSTILE[hostile])
    summary = _render(source_root, out)
    assert (summary.folded, summary.removed, summary.rendered) == (3, 1, 1)
    assert outside.read_bytes() == b"not yours"
    _assert_finished_like(out, reference)


def test_links_are_never_followed(source_root, reference, crashed, tmp_path):
    """An item folder that is a link (a worker would write through it) is unlinked, its
    target untouched; a sidecar that is a link proves nothing."""
    out = _copy(crashed, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "train" / "0000004", elsewhere)
    (out / "train" / "0000004").symlink_to(elsewhere, target_is_directory=True)
    rows = out / "train" / "0000005" / ROWS_FILE
    shutil.move(rows, tmp_path / "rows.json")
    rows.symlink_to(tmp_path / "rows.json")
    before = _files(elsewhere)
    summary = _render(source_root, out)
    assert (summary.folded, summary.removed, summary.rendered) == (2, 2, 2)
    assert _files(elsewhere) == before and (tmp_path / "rows.json").exists()
    _assert_finished_like(out, reference)


def _render_args(source_root: Path, out: Path, n: int = N) -> list[str]:
    return [
        "render", "--root", str(source_root), "--out", str(out), "--n", str(n), "--seconds",
        "0.5", "--sr", str(SR), "--quality", "fast", "--jobs", "1", "--batch-size", "4",
        "--valid-count", "1", "--quiet",
    ]  # fmt: skip


def _one_line(result, message: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert message in lines[0], lines[0]


@pytest.mark.parametrize("where", ["train", "manifest/parts", "manifest"])
def test_a_dataset_folder_that_is_a_link_is_refused_and_nothing_is_touched_through_it(
    source_root, crashed, tmp_path, where
):
    """`train/` (or a manifest folder) as a link to a folder of someone else's: the render
    would clean up, read and write there. It is refused in one line; the target is as it was."""
    out = _copy(crashed, tmp_path)
    victim = tmp_path / "victim"
    shutil.move(out / where, victim)
    (victim / "0000099").mkdir()
    (victim / "0000099" / "precious.txt").write_text("mine")
    (out / where).symlink_to(victim, target_is_directory=True)
    before = _files(victim)
    result = CliRunner().invoke(msaug, _render_args(source_root, out))
    _one_line(result, f"{out / where} (")
    assert (
        "is a symbolic link" in result.stderr and "replace it with a real folder" in result.stderr
    )
    assert _files(victim) == before


def test_a_dataset_json_that_is_a_link_is_refused(source_root, crashed, tmp_path):
    out = _copy(crashed, tmp_path)
    theirs = tmp_path / "theirs.json"
    shutil.move(out / "dataset.json", theirs)
    (out / "dataset.json").symlink_to(theirs)
    before = theirs.read_bytes()
    result = CliRunner().invoke(msaug, _render_args(source_root, out))
    _one_line(result, "dataset.json is a symbolic link")
    assert theirs.read_bytes() == before and (out / "dataset.json").is_symlink()


def test_a_train_file_is_refused(source_root, crashed, tmp_path):
    out = _copy(crashed, tmp_path)
    shutil.rmtree(out / "train")
    (out / "train").write_text("not a folder")
    result = CliRunner().invoke(msaug, _render_args(source_root, out))
    _one_line(result, f"{out / 'train'} (where rendered items go) is not a folder")
    assert (out / "train").read_text() == "not a folder"


def test_a_file_named_like_an_item_is_removed_and_the_item_rendered(
    source_root, reference, crashed, tmp_path
):
    """Named like an item and not one: a worker could not make the item's folder there."""
    out = _copy(crashed, tmp_path)
    shutil.rmtree(out / "train" / "0000004")
    (out / "train" / "0000004").write_bytes(b"debris")
    summary = _render(source_root, out)
    assert (summary.folded, summary.removed, summary.rendered) == (3, 1, 1)
    _assert_finished_like(out, reference)


def test_folders_named_with_other_digits_are_a_users(source_root, crashed, tmp_path):
    """Only ASCII digits name items: Arabic-Indic or fullwidth digits are a user's folder."""
    out = _copy(crashed, tmp_path)
    names = ["\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "\uff10" * 6 + "\uff11\uff12"]
    for name in names:
        (out / "train" / name).mkdir()
        (out / "train" / name / "mixture.wav").write_bytes(b"theirs")
    summary = _render(source_root, out)
    assert (summary.folded, summary.removed) == (4, 0)
    for name in names:
        assert (out / "train" / name / "mixture.wav").read_bytes() == b"theirs"


def test_last_run_present_is_the_summarys_number_counted_once(
    source_root, crashed, tmp_path, monkeypatch
):
    """The summary's present count and dataset.json's are one number, counted from the tables
    `finish` writes, not from a second read of every part."""
    out = _copy(crashed, tmp_path)
    finish = augment.render.finish

    def reread(self):
        raise AssertionError("finish read every part again")

    def finish_reading_once(writer, *args):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(DatasetWriter, "done_roles", reread)
            return finish(writer, *args)

    monkeypatch.setattr(augment.render, "finish", finish_reading_once)
    summary = _render(source_root, out, n=4)
    dataset = Dataset.open(out)
    last_run = dataset.header["provenance"]["last_run"]
    assert summary.present == last_run["present"] == (dataset.items["role"] == "train").sum() == 8


@pytest.fixture(scope="module")
def recipe(reference, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("recipe") / "recipe"
    write_recipe(reference, folder)
    return folder


def test_a_rebuild_folds_only_what_its_recipe_rows_replay(source_root, reference, recipe, tmp_path):
    """A rebuild killed before its second part: item 4 swapped for item 5's folder with item
    4's ids, index, paths and seeds. The recipe's row of item 4 exposes it: removed, rebuilt."""
    out = tmp_path / "ds"

    def rebuild():
        return rebuild_dataset(recipe, source_root, out, jobs=1, batch_size=4, progress=False)

    with pytest.MonkeyPatch.context() as patch:
        _crash_before_part(patch, "0000004")
        with pytest.raises(Crash):
            rebuild()
    folder = out / "train" / "0000004"
    shutil.rmtree(folder)
    shutil.copytree(out / "train" / "0000005", folder)
    own = Dataset.open(reference).items.set_index("item_id").loc["0000004"]
    _as_item_4(folder, {"run_seed": int(own["run_seed"]), "item_seed": int(own["item_seed"])})
    report = rebuild()
    assert (report.summary.folded, report.summary.removed, report.summary.rendered) == (3, 1, 1)
    assert report.identical
    _assert_finished_like(out, reference)


def test_a_signal_mid_batch_folds_what_its_workers_finished(
    source_root, reference, tmp_path, monkeypatch
):
    """SIGTERM arrives while item 6 renders: items 4 and 5 of that batch are whole, so the
    interrupted run folds them into its valid partial dataset; the resume renders 6 and 7."""
    out = tmp_path / "ds"
    original = augment.batches.render_item

    def signalled(plan, *args, **kwargs):
        if plan.index == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(plan, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(augment.batches, "render_item", signalled)
        summary = _render(source_root, out)
    assert summary.interrupted == "SIGTERM"
    assert (summary.rendered, summary.present, summary.requested) == (6, 6, N)
    assert verify(out).ok and not list(out.rglob(ROWS_FILE))
    kept = {name: _stamps(out / "train" / name) for name in ("0000004", "0000005")}
    resumed = _render(source_root, out)
    assert (resumed.skipped, resumed.rendered, resumed.folded) == (6, 2, 0)
    assert all(_stamps(out / "train" / name) == s for name, s in kept.items())
    _assert_finished_like(out, reference)


def test_validation_songs_and_user_folders_are_never_touched(tmp_path):
    """A validation song named like an item, whose part was never written, and a user's own
    folder stay as they are; the song is listed by the resume."""
    root = make_source_root(tmp_path / "src", tracks=3, seconds=4.0, sample_rate=SR)
    (root / "train" / "Track 02").rename(root / "train" / "1234567")
    out = tmp_path / "ds"

    def render():
        return render_dataset(
            _settings(root), out, n=2, jobs=1, progress=False, valid_tracks=("1234567",)
        )

    with pytest.MonkeyPatch.context() as patch:
        _crash_before_part(patch, "valid")
        with pytest.raises(Crash):
            render()
    song = out / "train" / "1234567"
    (song / "notes.txt").write_text("the user's")
    user = out / "train" / "Some Song - Title"
    user.mkdir()
    (user / "mixture.wav").write_bytes(b"theirs")
    render()
    assert (song / "notes.txt").read_text() == "the user's"
    assert (user / "mixture.wav").read_bytes() == b"theirs"
    items = Dataset.open(out).items
    assert items.set_index("item_id").loc["1234567", "role"] == "valid"
    assert len(items) == 3


def test_a_validation_song_folder_that_is_a_link_is_refused(tmp_path):
    """A validation song whose part was never written, its folder now a link elsewhere: its
    files would be placed through it. Refused in one line; the target stays as it was."""
    root = make_source_root(tmp_path / "src", tracks=3, seconds=4.0, sample_rate=SR)
    out = tmp_path / "ds"
    args = [
        "render", "--root", str(root), "--out", str(out), "--n", "2", "--seconds", "0.5",
        "--sr", str(SR), "--quality", "fast", "--jobs", "1", "--valid-tracks", "Track 02",
        "--quiet",
    ]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        _crash_before_part(patch, "valid")
        with pytest.raises(Crash):
            CliRunner().invoke(msaug, args, catch_exceptions=False)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("mine")
    shutil.rmtree(out / "train" / "Track 02")
    (out / "train" / "Track 02").symlink_to(victim, target_is_directory=True)
    result = CliRunner().invoke(msaug, args)
    _one_line(result, "Track 02 (a validation song's folder) is a symbolic link")
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]


def test_only_item_folders_are_looked_at(source_root, tmp_path):
    """The walk itself: unlisted item-like folders without sidecars go, anything else stays."""
    out = tmp_path / "ds"
    settings = _settings(source_root, valid_tracks=("0000009",))
    _render(source_root, out, n=1)
    for name in ("0000001", "0000002", "Some Song - Title", "12345", "0000009"):
        (out / "train" / name).mkdir()
    header = Dataset.open(out).header
    writer = DatasetWriter.open(
        out, header["identity"], {}, header["stems"], header["effect_columns"]
    )
    try:
        drawn = Drawn(load_config(None), parse_mode(settings.mode), {})
        settled = Leftovers(settings, drawn).settle(writer, writer.done_item_ids())
    finally:
        writer.close()
    assert (settled.folded, settled.removed) == ([], 2)
    names = sorted(p.name for p in (out / "train").iterdir())
    assert "0000001" not in names and "0000002" not in names
    assert {"0000000", "0000009", "12345", "Some Song - Title"} <= set(names)


def test_musdb_reads_a_folder_with_sidecars_as_before(crashed):
    """Sidecars are hidden files inside item folders: musdb sees the same tracks and stems."""
    import musdb

    tracks = musdb.DB(str(crashed), is_wav=True, subsets="train").tracks
    assert len(tracks) == N + 1  # the eight items (four of them with sidecars) and the song
    assert all(sorted(t.sources) == ["bass", "drums", "other", "vocals"] for t in tracks)
    assert (crashed / "train" / "0000004" / ROWS_FILE).exists()
