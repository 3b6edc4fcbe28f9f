"""Bad input, table-driven: exit status 2, one line naming the fix, no traceback, nothing
written. Also a render onto a full disk (a small tmpfs, where the machine lets us mount one)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from augment.cli import main as msaug
from manifests import Dataset
from manifests.verify import verify
from train.cli import main as mstrain

SR = 22050


def _one_line(result, message: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert message in lines[0], lines[0]


RENDER_FLAGS = [
    (["--seconds", "nan"], "--seconds must be a positive"),
    (["--seconds", "inf"], "--seconds must be a positive"),
    (["--seconds", "-2"], "--seconds must be a positive"),
    (["--seconds", "0.00001"], "shorter than one sample"),
    (["--jobs", "0"], "--jobs must be a number of workers"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--batch-size", "-3"], "--batch-size must be at least 1"),
    (["--n", "0"], "--n must be at least 1"),
    (["--sr", "1000"], "--sr must be between"),
    (["--mode", "sideways"], "--mode must be one of"),
    (["--mode", "mix:coherent=x"], "must be a number"),
    (["--shard", "3/2"], "--shard K/N needs"),
]

CONFIGS = [
    ("effects = 5", "effects must be a table"),
    ("stems = 5", "stems must be a table"),
    ("suitability = 5", "suitability must be a table"),
    ("[effects]\npitch_shift = 5", "effects.pitch_shift must be a table"),
    ("[stems]\nvocals = 5", "stems.vocals must be a table"),
    ("[stems.vocals]\neffects = 5", "stems.vocals.effects must be a table"),
    ("[effects.reverb]\np = 0.5\nmodes = 5", "modes must be a list"),
    ('[effects.reverb]\np = 0.5\nmodes = "coherent"', "modes must be a list"),
    ("[stems.bass]\ngain_db = [-100, 100]", "is outside [-24.0, 24.0] dB"),
    ("[suitability]\nwindow = 2.9", "must be a whole number"),
    ("[suitability]\nmax_attempts = 0", "must be at least 1"),
    ("[effects.pitch_shift]\np = 2", "must be in [0, 1]"),
    ("[effects.pitch_shift]\np = 0.5\nsemitones = [-100, 100]", "is outside"),
    ("[effects.pitch_shift]\np = 0.5\nsemitones = [2, -2]", "inverted"),
    ("[effects.time_stretch]\np = 0.5\nfactor = [0.8, 1.2]", "duration_factor"),
    ("[effects.wobble]\np = 0.5", "unknown effect"),
    ("[effects", "not valid TOML"),
]


def _render_args(source_root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "render", "--root", str(source_root), "--out", str(out), "--n", "2", "--seconds", "1",
        "--sr", str(SR), "--quality", "fast", "--jobs", "1", "--quiet", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(("flags", "message"), RENDER_FLAGS)
def test_bad_render_flags(source_root, tmp_path, flags, message):
    out = tmp_path / "out"
    _one_line(CliRunner().invoke(msaug, _render_args(source_root, out, *flags)), message)
    assert not out.exists()


@pytest.mark.parametrize(("text", "message"), CONFIGS)
def test_bad_config_files(source_root, tmp_path, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(msaug, _render_args(source_root, out, "--config", str(config)))
    _one_line(result, message)
    assert not out.exists()


def test_an_unwritable_out_is_one_line(source_root, tmp_path):
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(msaug, _render_args(source_root, tmp_path / "file" / "out"))
    _one_line(result, "cannot write to")


@pytest.mark.parametrize("text", ["{bad", "[1, 2]", "\udcff"], ids=["json", "list", "utf8"])
def test_a_damaged_dataset_json_on_resume_is_one_line(source_root, tmp_path, text):
    out = tmp_path / "out"
    assert CliRunner().invoke(msaug, _render_args(source_root, out)).exit_code == 0
    raw = text.encode("utf-8", "surrogateescape")
    (out / "dataset.json").write_bytes(raw)
    result = CliRunner().invoke(msaug, _render_args(source_root, out))
    _one_line(result, "is not readable dataset settings")
    assert (out / "dataset.json").read_bytes() == raw  # nothing written


TRAIN_FLAGS = [
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--batch-size", "-3"], "--batch-size must be at least 1"),
    (["--segment", "0"], "--segment (seconds) must be a positive"),
    (["--segment", "nan"], "--segment (seconds) must be a positive"),
    (["--segment", "30"], "longer than the shortest item"),
    (["--workers", "-1"], "--workers must be at least 0"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--lr", "-1"], "--lr must be a number >= 0"),
    (["--where", "item_index > 99"], "selects no items"),
]


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data", str(data), "--model", "unet", "--out", str(out), "--epochs", "1",
        "--segment", "0.5", "--workers", "0", "--model-arg", f"sample_rate={SR}", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(("flags", "message"), TRAIN_FLAGS)
def test_bad_train_flags(small_render, tmp_path, flags, message):
    out = tmp_path / "run"
    _one_line(CliRunner().invoke(mstrain, _train_args(small_render, out, *flags)), message)
    assert not out.exists()


def _delete(path: Path) -> None:
    path.unlink()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:2000])


def _corrupt(path: Path) -> None:
    path.write_bytes(b"not audio at all" * 100)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_delete, "missing or unreadable"),
        (_corrupt, "missing or unreadable"),
        (_truncate, "frames"),
    ],
)
def test_damaged_audio_is_refused_before_training(small_render, tmp_path, damage, message):
    data = tmp_path / "ds"
    shutil.copytree(small_render, data)
    damage(data / Dataset.open(data).stems["path"][2])
    out = tmp_path / "run"
    _one_line(CliRunner().invoke(mstrain, _train_args(data, out)), message)
    assert not out.exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs, or a skip where this machine does not let the tests mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_render_that_cannot_fit_is_refused_up_front(source_root, small_disk):
    out = small_disk / "ds"
    args = _render_args(source_root, out)
    args[args.index("--n") + 1] = "40"
    _one_line(CliRunner().invoke(msaug, args), "free; free space")
    assert not out.exists()


def test_a_full_disk_is_one_line_and_the_rerun_resumes(source_root, small_disk, tmp_path):
    out = small_disk / "ds"
    args = [*_render_args(source_root, out, "--force", "--batch-size", "1")]
    args[args.index("--n") + 1] = "16"
    _one_line(CliRunner().invoke(msaug, args), "is full after")
    finished = len(list((out / "manifest" / "parts" / "items").glob("*.parquet")))
    assert finished > 0
    moved = tmp_path / "ds"  # 'free space': continue where there is room
    shutil.copytree(out, moved)
    args[args.index("--out") + 1] = str(moved)
    result = CliRunner().invoke(msaug, args)
    assert result.exit_code == 0, result.output
    assert len(Dataset.open(moved)) == 16 and verify(moved).ok
    args[args.index("--out") + 1] = str(tmp_path / "reference")
    assert CliRunner().invoke(msaug, args).exit_code == 0
    digest = Dataset.open(tmp_path / "reference").header["digest"]
    assert Dataset.open(moved).header["digest"] == digest
