"""Datasets from elsewhere are untrusted: an adversarial corpus built from a real render.

Each attack is what a sender could put in a dataset or a shard set (edited tables resealed
with a matching listing and digest, since the sender controls those too). Every tool must
refuse it with exit status 2 and one line, and nothing may appear outside the target folder.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from augment.cli import main as msaug
from manifests import Dataset, ManifestError
from manifests.pack import pack
from manifests.schema import DATASET_JSON
from manifests.tables import write_tables
from manifests.verify import verify
from train.cli import main as mstrain_main

SR = 22050


@pytest.fixture
def work(tmp_path, small_render) -> Path:
    """A private copy of the render inside `tmp_path/inside`; the rest of tmp_path is 'outside'."""
    copy = tmp_path / "inside" / "ds"
    shutil.copytree(small_render, copy)
    return copy


def _outside(tmp_path: Path) -> set[str]:
    """Every path under tmp_path that is not in the sandbox the tools may write to."""
    return {
        p.relative_to(tmp_path).as_posix()
        for p in tmp_path.rglob("*")
        if not p.relative_to(tmp_path).as_posix().startswith("inside")
    }


def _msaug(*args: object):
    return CliRunner().invoke(msaug, [str(a) for a in args])


def _mstrain(*args: object):
    return CliRunner().invoke(mstrain_main, [str(a) for a in args])


def _refused(result, message: str = "") -> str:
    """Exit 2 with exactly one line on stderr, naming `message`; returns the line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output
    assert message in lines[0], lines[0]
    return lines[0]


def _reseal(root: Path, items=None, stems=None, header=None) -> None:
    """Write edited tables (and header) with a listing and digest to match, as a sender can."""
    dataset = Dataset.open(root)
    header = header if header is not None else dict(dataset.header)
    write_tables(
        root,
        header,
        dataset.items if items is None else items,
        dataset.stems if stems is None else stems,
    )


BAD_PATHS = [
    "../escape/mixture.wav",
    "/tmp/msaug-absolute/mixture.wav",
    "train/../../escape.wav",
    "train/.hidden/mixture.wav",
    "train/0000000/mix\x07.wav",
    "train/0000000/mixture.txt",
]


def _tool_commands(ds: Path, tmp: Path) -> dict[str, tuple]:
    out = tmp / "inside" / "out"
    return {
        "verify": ("verify", ds),
        "select": ("select", ds, "--where", "item_index >= 0", "--out", out),
        "merge": ("merge", ds, ds, "--out", out),
        "pack": ("pack", ds, "--out", out),
        "card": ("card", ds),
        "stats": ("stats", ds),
        "rerender": ("rerender", ds, "--item", "0000000"),
    }


@pytest.mark.parametrize("bad", BAD_PATHS)
@pytest.mark.parametrize("table", ["items", "stems"])
def test_paths_outside_the_dataset_are_refused_by_every_tool(work, tmp_path, table, bad):
    dataset = Dataset.open(work)
    items, stems = dataset.items.copy(), dataset.stems.copy()
    if table == "items":
        items.loc[0, "mixture_path"] = bad
    else:
        stems.loc[1, "path"] = bad
    _reseal(work, items, stems)
    before = _outside(tmp_path)
    for args in _tool_commands(work, tmp_path).values():
        _refused(_msaug(*args), "path")
    _refused(_mstrain("--data", work, "--model", "unet", "--out", tmp_path / "inside" / "run"))
    assert _outside(tmp_path) == before
    assert not (tmp_path / "inside" / "out").exists()


def test_a_link_out_of_the_dataset_is_never_followed(work, tmp_path):
    """A folder dataset can hold a link whose target has exactly the listed bytes."""
    elsewhere = tmp_path / "elsewhere"
    shutil.move(work / "train" / "0000001", elsewhere)
    (work / "train" / "0000001").symlink_to(elsewhere, target_is_directory=True)
    report = verify(work)
    assert not report.ok and report.counts() == {"unsafe": 5}
    out = tmp_path / "inside" / "out"
    for args in [
        ("select", work, "--where", "item_index >= 0", "--out", out),
        ("pack", work, "--out", out),
        ("merge", work, work, "--out", out),
    ]:
        _refused(_msaug(*args), "leads outside the dataset")
    assert not out.exists()


def test_rerender_refuses_a_format_that_would_name_a_file_outside(work, tmp_path):
    header = json.loads((work / DATASET_JSON).read_text())
    header["identity"]["settings"]["format"] = "wav/../../../../escape"
    _reseal(work, header=header)
    before = _outside(tmp_path)
    _refused(_msaug("rerender", work, "--item", "0000000", "--root", work), "--format")
    assert _outside(tmp_path) == before


WHERE_PAYLOADS = [
    "@pd.io.common.os.system('touch {marker}') == 0",
    "item_index == @Path('{marker}').touch()",
    "mode.__class__.__mro__",
    "__import__('os').system('touch {marker}')",
    "item_index.__class__ == 1",
    "open('{marker}', 'w')",
    "item_index == abs.__self__",
    "[c for c in mode]",
    "(lambda: 1)() == 1",
    "mode[0] == 'c'",
    "__builtins__ == 1",
    "item_index == 1 if True else 0",
    "mode = 'coherent'",
    "`mode` == 'coherent'",
]


@pytest.mark.parametrize("payload", WHERE_PAYLOADS)
def test_where_payloads_are_refused_before_pandas_sees_them(work, tmp_path, payload):
    marker = tmp_path / "marker"
    where = payload.format(marker=marker)
    line = _refused(
        _msaug("select", work, "--where", where, "--out", tmp_path / "inside" / "s"), "--where"
    )
    assert "is not allowed" in line or "does not parse" in line or "no column" in line
    _refused(
        _mstrain("--data", work, "--where", where, "--out", tmp_path / "inside" / "run"),
        "--where",
    )
    assert not marker.exists()


def test_documented_queries_keep_working(work):
    dataset = Dataset.open(work)
    for where in [
        "mode == 'incoherent' and item_index >= 0",
        "vocals_pitch_shift_applied or not vocals_pitch_shift_applied",
        "abs(vocals_gain_db) >= 0 and vocals_time_stretch_duration_factor != -1",
        "not (vocals_reverb_applied and drums_reverb_applied and bass_reverb_applied "
        "and other_reverb_applied and False)",
        "mode in ['coherent', 'incoherent'] and common_scale <= 1.0",
        "~(item_index < 0) & (item_index * 2 + 1 > 0)",
    ]:
        assert len(dataset.select(where)) == len(dataset), where


def test_a_misspelt_column_is_named_with_a_suggestion(work):
    with pytest.raises(ManifestError, match="did you mean vocals_pitch_shift_applied"):
        Dataset.open(work).select("vocals_pitch_applied")


# -- shards -------------------------------------------------------------------------------------


def _rewrite_first_shard(shards: Path, edit) -> None:
    """Rebuild shard 0 with `edit(members)` applied and reseal its size in shards.json."""
    path = shards / "shard-000000.tar"
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in edit(members):
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    index = json.loads((shards / "shards.json").read_text())
    index["shards"][0]["bytes"] = path.stat().st_size
    (shards / "shards.json").write_text(json.dumps(index))


def _link(kind):
    def edit(members):
        link = tarfile.TarInfo(members[0][0].name)
        link.type, link.linkname = kind, "/etc/passwd"
        return [(link, None), *members[1:]]

    return edit


def _traversal(members):
    data = members[0][1]
    evil = tarfile.TarInfo("../../escape.wav")
    evil.size = len(data)
    return [(evil, data), *members]


def _duplicate(members):
    return [*members, members[0]]


def _device(members):
    fifo = tarfile.TarInfo(members[0][0].name)
    fifo.type = tarfile.FIFOTYPE
    return [(fifo, None), *members[1:]]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_link(tarfile.SYMTYPE), "symbolic link"),
        (_link(tarfile.LNKTYPE), "hard link"),
        (_traversal, "does not list"),
        (_duplicate, "twice"),
        (_device, "device or special file"),
    ],
)
def test_unpack_refuses_hostile_members_and_writes_nothing(work, tmp_path, edit, message):
    shards = tmp_path / "inside" / "shards"
    pack(work, shards, shard_size=10**9)
    _rewrite_first_shard(shards, edit)
    before = _outside(tmp_path)
    out = tmp_path / "inside" / "restored"
    _refused(_msaug("unpack", shards, "--out", out), message)
    assert not out.exists() and _outside(tmp_path) == before
    assert not (tmp_path / "escape.wav").exists()
    assert not verify(shards).ok


def test_unpack_refuses_a_shard_name_outside_the_folder(work, tmp_path):
    shards = tmp_path / "inside" / "shards"
    pack(work, shards)
    index = json.loads((shards / "shards.json").read_text())
    index["shards"][0]["name"] = "../../outside.tar"
    (shards / "shards.json").write_text(json.dumps(index))
    _refused(_msaug("unpack", shards, "--out", tmp_path / "inside" / "r"), "cannot name a file")
    _refused(_msaug("verify", shards), "cannot name a file")


def test_unpack_refuses_manifest_paths_outside_the_folder(work, tmp_path):
    shards = tmp_path / "inside" / "shards"
    pack(work, shards)
    dataset = Dataset.open(shards)
    stems = dataset.stems.copy()
    stems.loc[0, "path"] = "../escape/vocals.wav"
    _reseal(shards, stems=stems)
    before = _outside(tmp_path)
    _refused(_msaug("unpack", shards, "--out", tmp_path / "inside" / "r"), "component '..'")
    assert _outside(tmp_path) == before


# -- integrity ----------------------------------------------------------------------------------


def test_a_flipped_byte_in_a_table_fails_verify(work):
    dataset = Dataset.open(work)
    path = dataset.path(dataset.table_files()[1])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    try:
        report = verify(work)
    except ManifestError:
        return  # unreadable Parquet is refused outright, which is as good
    assert not report.ok and "manifest" in report.counts()


def test_expect_accepts_the_posted_digest_and_refuses_any_other(work):
    digest = Dataset.open(work).header["digest"]
    plain = verify(work)
    assert plain.ok and "internal consistency only" in plain.summary()
    posted = verify(work, expect=digest)
    assert posted.ok and "the digest expected" in posted.summary()
    other = verify(work, expect="sha256:" + "0" * 64)
    assert not other.ok and other.counts() == {"digest": 1}
    result = _msaug("verify", work, "--expect", "sha256:" + "0" * 64)
    assert result.exit_code == 1 and "not the dataset that digest was posted for" in result.output


def test_a_resealed_edit_changes_the_digest_a_publisher_posted(work):
    """Resealing makes the folder consistent again, but not the one that was posted."""
    digest = Dataset.open(work).header["digest"]
    dataset = Dataset.open(work)
    stems = dataset.stems.copy()
    stems.loc[0, "gain_db"] += 1.0
    _reseal(work, stems=stems)
    assert verify(work).ok
    assert not verify(work, expect=digest).ok


def test_schema_1_verify_says_it_has_no_digest(tmp_path):
    fixture = Path(__file__).parent / "fixtures" / "schema1" / "dataset"
    report = verify(fixture, expect="sha256:" + "0" * 64)
    assert report.counts() == {"digest": 1}
    assert "no digest" in report.summary()


def test_nothing_outside_is_created_when_out_is_the_dataset_link(work, tmp_path):
    """--out given as a link into the input is still 'inside the input'."""
    link = tmp_path / "inside" / "alias"
    os.symlink(work / "train", link)
    _refused(_msaug("select", work, "--out", link / "sub"), "inside the input")


def test_a_misspelt_value_lists_the_values_that_exist(work):
    with pytest.raises(ManifestError, match=r"mode has no value 'coherant' \(did you mean"):
        Dataset.open(work).select("mode == 'coherant'")
