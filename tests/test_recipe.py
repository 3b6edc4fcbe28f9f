"""Recipes: a dataset rebuilt byte for byte from its manifest and a copy of the sources
elsewhere; differing sources and builds refused or reported; a killed rebuild resumes; a
recipe from elsewhere is untrusted input. Also the portable shards of issue 17: `--shard`
parts rendered from different mount paths rejoin as one render."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from sources_factory import make_source_root

from augment.cli import main as msaug
from augment.errors import ConfigError
from augment.rebuild import rebuild_dataset
from augment.recipe import RECIPE_JSON, write_recipe
from augment.render import RenderSettings, render_dataset
from augment.rerender import rerender_item
from augment.source_index import INDEX_FILE
from manifests import Dataset, DatasetWriter, ManifestError
from manifests.merge import merge
from manifests.subset import write_selection
from manifests.tables import content_digest
from manifests.verify import verify

SR = 22050
SONG = "Track 00"


class Crash(BaseException):
    """A kill: not an Exception, so no handler swallows it."""


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A render with a validation song, its recipe, and a copy of the sources elsewhere."""
    base = tmp_path_factory.mktemp("recipe")
    root = make_source_root(base / "here", tracks=3, seconds=4.0, sample_rate=SR)
    settings = RenderSettings(root=str(root), seconds=0.5, sample_rate=SR, quality="fast")
    render_dataset(settings, base / "ds", n=4, jobs=1, batch_size=2, progress=False, valid_count=1)
    write_recipe(base / "ds", base / "recipe")
    other = base / "mounted" / "elsewhere"
    shutil.copytree(root, other)
    (other / INDEX_FILE).unlink(missing_ok=True)
    return {"root": root, "ds": base / "ds", "recipe": base / "recipe", "other": other}


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in (".wav", ".flac", ".parquet")
    }


def _rebuild(made, out: Path, *extra: str):
    args = ["render", "--recipe", str(made["recipe"]), "--root", str(made["other"])]
    return CliRunner().invoke(msaug, [*args, "--out", str(out), "--jobs", "1", "--quiet", *extra])


def test_a_recipe_holds_no_audio_and_names_what_must_match(made):
    recipe = made["recipe"]
    assert not [p for p in recipe.rglob("*") if p.suffix in (".wav", ".flac")]
    info = json.loads((recipe / RECIPE_JSON).read_text())
    header = Dataset.open(made["ds"]).header
    assert info["digest"] == header["digest"]
    assert info["libraries"] == header["identity"]["libraries"]
    assert info["sources"]["n_files"] == len(header["identity"]["sources"]["files"])
    assert info["valid_songs"] == sorted(
        Dataset.open(made["ds"]).items.query("role == 'valid'")["item_id"]
    )


def test_rebuilt_elsewhere_byte_for_byte(made, tmp_path):
    out = tmp_path / "rebuilt"
    result = _rebuild(made, out)
    assert result.exit_code == 0, result.output
    assert "rebuilt byte for byte" in result.output
    assert _files(out) == _files(made["ds"])  # audio, validation songs and Parquet tables
    assert Dataset.open(out).header["digest"] == Dataset.open(made["ds"]).header["digest"]
    assert verify(out).ok
    again = _rebuild(made, out)  # a finished rebuild rerun is a no-op
    assert again.exit_code == 0 and _files(out) == _files(made["ds"])


def _changed_copy(made, tmp_path: Path) -> Path:
    """The sources elsewhere with one song's bass at half level: every item of it differs."""
    copy = tmp_path / "changed"
    shutil.copytree(made["other"], copy)
    path = copy / "train" / SONG / "bass.wav"
    audio, sr = sf.read(path, dtype="float32")
    sf.write(path, audio * np.float32(0.5), sr, subtype="FLOAT")
    return copy


def test_a_changed_source_is_refused_before_anything_is_written(made, tmp_path):
    made = {**made, "other": _changed_copy(made, tmp_path)}
    out = tmp_path / "refused"
    result = _rebuild(made, out)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert f"train/{SONG}/bass.wav differs" in lines[0] and "--allow-mismatch" in lines[0]
    assert not out.exists()


def test_allow_mismatch_reports_each_item_and_why(made, tmp_path):
    made = {**made, "other": _changed_copy(made, tmp_path)}
    out = tmp_path / "mismatch"
    result = _rebuild(made, out, "--allow-mismatch")
    assert result.exit_code == 1
    stems = Dataset.open(made["ds"]).stems
    hit = sorted(set(stems[(stems["stem"] == "bass") & (stems["source_track"] == SONG)].item_id))
    assert hit, "the fixture must use the changed song's bass"
    for item in hit:
        assert f"{item}: " in result.output
    assert f"train/{SONG}/bass.wav" in result.output
    assert "NOT identical" in result.output
    assert verify(out).ok  # the rebuilt files are what its own tables say


def test_a_different_build_is_refused_and_named(made, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "augment.rebuild.library_versions", lambda settings, form: {"pedalboard": "0.0.1"}
    )
    with pytest.raises(ConfigError, match=r"pedalboard: was [\d.]+, now 0\.0\.1"):
        rebuild_dataset(made["recipe"], made["other"], tmp_path / "x", jobs=1, progress=False)
    assert not (tmp_path / "x").exists()


def test_a_killed_rebuild_resumes_byte_identically(made, tmp_path, monkeypatch):
    out = tmp_path / "killed"
    original = DatasetWriter.write_part
    calls = []

    def dies_on_third_part(self, *args, **kwargs):  # validation songs, item 0, item 1
        calls.append(args[0])
        if len(calls) == 3:
            raise Crash
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DatasetWriter, "write_part", dies_on_third_part)
    with pytest.raises(Crash):
        rebuild_dataset(made["recipe"], made["other"], out, jobs=1, batch_size=1, progress=False)
    monkeypatch.setattr(DatasetWriter, "write_part", original)
    report = rebuild_dataset(
        made["recipe"], made["other"], out, jobs=1, batch_size=1, progress=False
    )
    # item 1 was rebuilt but its part never written: its sidecar proves it, so it is folded in
    assert (report.summary.skipped, report.summary.folded, report.summary.rendered) == (2, 1, 2)
    assert report.identical and _files(out) == _files(made["ds"])


def test_a_selections_recipe_rebuilds_the_selection(made, tmp_path):
    selection = Dataset.open(made["ds"]).select("item_index >= 2")
    write_selection(selection, tmp_path / "sel")
    write_recipe(tmp_path / "sel", tmp_path / "sel-recipe")
    report = rebuild_dataset(
        tmp_path / "sel-recipe", made["other"], tmp_path / "sel-rebuilt", jobs=1, progress=False
    )
    assert report.identical
    assert report.digest == Dataset.open(tmp_path / "sel").header["digest"]
    assert len(Dataset.open(tmp_path / "sel-rebuilt")) == len(selection)


def test_shards_of_a_rebuild_merge_into_the_recipes_dataset(made, tmp_path):
    parts = []
    for k in range(2):
        part = tmp_path / f"part{k}"
        result = _rebuild(made, part, "--shard", f"{k}/2")
        assert result.exit_code == 0, result.output
        parts.append(part)
    merge(parts, tmp_path / "merged")
    assert (
        Dataset.open(tmp_path / "merged").header["digest"]
        == Dataset.open(made["ds"]).header["digest"]
    )


def test_shards_rendered_at_different_mount_paths_rejoin_as_one_render(made, tmp_path):
    """Issue 17: the identity names sources by content, never by absolute root."""
    parts = []
    for k, root in enumerate((made["root"], made["other"])):
        settings = RenderSettings(root=str(root), seconds=0.5, sample_rate=SR, quality="fast")
        part = tmp_path / f"shard{k}"
        render_dataset(
            settings, part, n=4, jobs=1, batch_size=2, progress=False, valid_count=1, shard=(k, 2)
        )
        parts.append(part)
    merge(parts, tmp_path / "merged")
    merged = Dataset.open(tmp_path / "merged")
    assert merged.header["digest"] == Dataset.open(made["ds"]).header["digest"]
    moved = tmp_path / "third-place"
    shutil.copytree(made["root"], moved)
    ids = list(merged.items["item_id"])
    assert ids and all(rerender_item(tmp_path / "merged", i, moved).ok for i in ids)


def test_flags_the_recipe_decides_are_refused(made, tmp_path):
    result = _rebuild(made, tmp_path / "x", "--seed", "3", "--mode", "coherent")
    assert result.exit_code == 2
    assert "cannot go with --recipe" in result.output
    assert "--mode" in result.output and "--seed" in result.output
    assert not (tmp_path / "x").exists()


def _tampered(made, tmp_path: Path, change) -> Path:
    """A copy of the recipe with `change` applied to its header and the digest recomputed, as
    an attacker would: the digest is a checksum, not a signature."""
    copy = tmp_path / "tampered"
    shutil.copytree(made["recipe"], copy)
    dataset = Dataset.open(copy)
    header = json.loads((copy / "dataset.json").read_text())
    change(header)
    header["digest"] = content_digest(header, dataset.items, dataset.stems)
    (copy / "dataset.json").write_text(json.dumps(header, sort_keys=True))
    info = json.loads((copy / RECIPE_JSON).read_text())
    info["digest"] = header["digest"]
    (copy / RECIPE_JSON).write_text(json.dumps(info))
    return copy


def test_a_source_name_that_leaves_the_root_is_refused(made, tmp_path):
    def escape(header):
        files = header["identity"]["sources"]["files"]
        files["../../outside/bass.wav"] = next(iter(files.values()))

    copy = _tampered(made, tmp_path, escape)
    with pytest.raises(ManifestError, match=r"\.\./\.\./outside"):
        rebuild_dataset(copy, made["other"], tmp_path / "x", jobs=1, progress=False)
    assert not (tmp_path / "x").exists()


def test_an_altered_recipe_is_refused(made, tmp_path):
    copy = tmp_path / "altered"
    shutil.copytree(made["recipe"], copy)
    info = json.loads((copy / RECIPE_JSON).read_text())
    info["digest"] = "sha256:" + "0" * 64
    (copy / RECIPE_JSON).write_text(json.dumps(info))
    with pytest.raises(ManifestError, match="altered"):
        rebuild_dataset(copy, made["other"], tmp_path / "x", jobs=1, progress=False)
    (copy / RECIPE_JSON).unlink()
    with pytest.raises(ManifestError, match="not a recipe"):
        rebuild_dataset(copy, made["other"], tmp_path / "x", jobs=1, progress=False)


def test_a_shorter_source_is_reported_per_item_not_a_crash(made, tmp_path):
    copy = tmp_path / "short"
    shutil.copytree(made["other"], copy)
    path = copy / "train" / SONG / "bass.wav"
    audio, sr = sf.read(path, dtype="float32")
    sf.write(path, audio[: sr // 2], sr, subtype="FLOAT")  # half a second is left
    out = tmp_path / "short-out"
    result = _rebuild({**made, "other": copy}, out, "--allow-mismatch")
    assert result.exit_code == 1 and "Traceback" not in result.output
    stems = Dataset.open(made["ds"]).stems
    late = stems[(stems["stem"] == "bass") & (stems["source_track"] == SONG)]
    assert any(f"{i}: not rebuilt: " in result.output for i in late["item_id"])
    assert verify(out).ok  # what could be rebuilt is a valid dataset


def test_a_track_key_without_a_subset_is_refused(made, tmp_path):
    def no_subset(header):
        frames = header["identity"]["sources"]["frames"]
        frames["no-subset"] = next(iter(frames.values()))

    copy = _tampered(made, tmp_path, no_subset)
    with pytest.raises(ManifestError, match="no-subset"):
        rebuild_dataset(copy, made["other"], tmp_path / "x", jobs=1, progress=False)
