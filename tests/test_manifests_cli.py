"""The dataset commands of `msaug`: wiring, exit statuses, and one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from factory import make_dataset

from augment.cli import main
from manifests import Dataset
from manifests.schema import DATASET_JSON, SCHEMA_VERSION


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "ds", n_items=4)


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_select_stats_card_pack_unpack_verify(dataset, tmp_path):
    sub, shards, back = tmp_path / "sub", tmp_path / "shards", tmp_path / "back"
    result = _run("select", dataset, "--where", "not vocals_pitch_shift_applied", "--out", sub)
    assert result.exit_code == 0, result.output
    assert "selected 2 items" in result.stdout and "10 files hard-linked" in result.stdout
    assert json.loads((sub / DATASET_JSON).read_text())["provenance"]["command"].startswith(
        "msaug "
    )
    result = _run("stats", sub, "--json", "--plot", tmp_path / "plots")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["modes"] == {"coherent": 2}
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "coverage.png",
        "levels.png",
        "parameters.png",
    ]
    assert "2 items: coherent 2" in _run("stats", sub).stdout
    assert _run("card", sub).exit_code == 0 and (sub / "README.md").is_file()
    result = _run("pack", sub, "--out", shards, "--shard-size", "100KB")
    assert result.exit_code == 0 and "into 2 shards" in result.stdout, result.output
    assert _run("unpack", shards, "--out", back).exit_code == 0
    for root in (sub, shards, back):
        result = _run("verify", root, "--jobs", 1)
        assert result.exit_code == 0 and result.stdout.startswith("OK: "), result.output


def test_merge_command(dataset, tmp_path):
    other = make_dataset(tmp_path / "other", n_items=2, seed=3)
    result = _run("merge", dataset, other, "--out", tmp_path / "merged")
    assert result.exit_code == 0, result.output
    assert len(Dataset.open(tmp_path / "merged")) == 6


def test_verify_lists_each_problem_and_exits_1(dataset):
    (dataset / "train/0000001/bass.wav").unlink()
    (dataset / "train/0000002/drums.wav").write_bytes(b"short")
    result = _run("verify", dataset, "--quick")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("missing") and "train/0000001/bass.wav" in lines[0]
    assert lines[1].startswith("truncated") and "train/0000002/drums.wav" in lines[1]
    assert lines[2].startswith("FAILED: 2 problems") and len(lines) == 3


def _newer_schema(root):
    header = json.loads((root / DATASET_JSON).read_text())
    (root / DATASET_JSON).write_text(json.dumps({**header, "schema_version": SCHEMA_VERSION + 1}))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("verify", "{tmp}/nowhere"), "does not exist"),
        (("select", "{ds}", "--where", "mode ==", "--out", "{tmp}/s"), "does not parse"),
        (("select", "{ds}", "--where", "item_index > 99", "--out", "{tmp}/s"), "selects no items"),
        (("select", "{ds}", "--out", "{ds}"), "not empty"),
        (("stats", "{tmp}"), "not an msaug dataset"),
        (("merge", "{ds}", "{tmp}/rate", "--out", "{tmp}/m"), "different sample rates"),
        (("pack", "{ds}", "--out", "{tmp}/p", "--shard-size", "big"), "--shard-size"),
        (("unpack", "{ds}", "--out", "{tmp}/u"), "shards.json is missing"),
        (("card", "{tmp}/newer"), "upgrade msaug"),
    ],
)
def test_errors_are_one_line_without_traceback(dataset, tmp_path, args, message):
    make_dataset(tmp_path / "rate", n_items=1, sample_rate=16000)
    _newer_schema(make_dataset(tmp_path / "newer", n_items=1))
    result = _run(*(a.format(tmp=tmp_path, ds=dataset) for a in args))
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("msaug: error: ") and message in line
    assert "Traceback" not in result.output


def test_columns_lists_what_where_can_use_with_examples(dataset):
    result = _run("columns", str(dataset))
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "mode" in lines and "'coherent'" in lines["mode"]
    assert (
        "<stem>_pitch_shift_semitones" in lines
        and "float64" in lines["<stem>_pitch_shift_semitones"]
    )
    assert not any(name.startswith("vocals_") for name in lines)  # per-stem columns once
    wide = Dataset.open(dataset).wide
    for name in lines:  # every listed name is queryable
        column = name.replace("<stem>", "vocals")
        assert column in wide.columns
