"""mstrain end to end: train, resume, checkpoints, eval on a MUSDB-HQ folder, separate, errors."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from factory import make_dataset

from manifests import STEM_NAMES, Dataset
from manifests.schema import MIXTURE
from train import checkpoint
from train.cli import main
from train.inference import overlap_add

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 8000
TINY = [
    "--segment", "0.5", "--batch-size", "2", "--workers", "0", "--valid-fraction", "0.25",
    "--model-arg", f"sample_rate={SR}", "--model-arg", "widths=[4,8,16]",
    "--model-arg", "bottleneck=16",
]  # fmt: skip


def mstrain(*args: object) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exit_code != 0 and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def losses(run: Path) -> list[tuple[float, float]]:
    with open(run / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(float(r["train_loss"]), float(r["valid_loss"])) for r in rows]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), 8, 1.0, SR)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "unet"
    assert mstrain("--data", data, "--out", out, "--epochs", 2, *TINY).exit_code == 0
    return out


@pytest.fixture(scope="module")
def musdb_root(tmp_path_factory) -> Path:
    """MUSDB18-HQ layout: test/<track>/{mixture,vocals,drums,bass,other}.wav, mixture = sum."""
    root = tmp_path_factory.mktemp("musdb")
    rng = np.random.default_rng(0)
    t = np.arange(int(2.5 * SR)) / SR
    folder = root / "test" / "Artist - Song"
    folder.mkdir(parents=True)
    stems = {}
    for i, stem in enumerate(STEM_NAMES):
        tone = np.sin(2 * np.pi * 110 * (i + 1) * t) + 0.1 * rng.standard_normal(t.size)
        stems[stem] = 0.1 * np.stack([tone, 0.5 * tone]).T
        sf.write(folder / f"{stem}.wav", stems[stem], SR, subtype="FLOAT")
    sf.write(folder / f"{MIXTURE}.wav", sum(stems.values()), SR, subtype="FLOAT")
    return root


def test_training_writes_logs_plot_and_checkpoints(run, data):
    assert len(losses(run)) == 2
    assert all(math.isfinite(v) for row in losses(run) for v in row)
    assert (run / "loss.png").stat().st_size > 0
    assert any((run / "tensorboard").iterdir())
    last = checkpoint.load(run / checkpoint.LAST)
    assert last["epoch"] == 2 and len(last["history"]) == 2
    assert last["manifest_checksum"] == Dataset.open(data).manifest_checksum()
    assert "--epochs 2" in last["command"]
    assert last["config"]["loop"]["epochs"] == 2
    assert {"optimizer", "scheduler", "scaler", "rng", "git_commit"} <= set(last)
    best = checkpoint.load(run / checkpoint.BEST)
    assert best["epoch"] == best["best_epoch"] == last["best_epoch"]


def test_checkpoint_rebuilds_the_model_alone(run):
    model, _ = checkpoint.load_run_model(run)
    assert model.name == "unet" and model.sources == STEM_NAMES and model.sample_rate == SR
    assert model.init_kwargs["widths"] == [4, 8, 16]


def test_resume_continues_the_uninterrupted_run(data, tmp_path):
    """Same losses, bit for bit, whether a run stops after epoch 2 or not (and any --workers)."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    mstrain("--data", data, "--out", straight, "--epochs", 4, *TINY)
    mstrain("train", "--data", data, "--out", stopped, "--epochs", 2, *TINY)
    mstrain("--data", data, "--out", stopped, "--epochs", 4, "--resume", *TINY, "--workers", 1)
    assert len(losses(straight)) == 4
    assert losses(stopped) == losses(straight)


def test_early_stop_after_patience(data, tmp_path):
    """With lr 0 only BatchNorm statistics move, so validation soon stops improving."""
    out = tmp_path / "flat"
    mstrain("--data", data, "--out", out, "--epochs", 9, "--lr", 0, "--patience", 2, *TINY)
    valid = [v for _, v in losses(out)]
    assert len(valid) == int(np.argmin(valid)) + 1 + 2 < 9


def test_the_run_logs_valid_usdr_only_when_asked(data, tmp_path):
    runs = {}
    for name, extra in (("plain", []), ("sdr", ["--valid-sdr"])):
        out = tmp_path / name
        result = mstrain("--data", data, "--out", out, "--epochs", 2, *TINY, *extra)
        assert result.exit_code == 0, result.output
        with open(out / "log.csv", newline="") as handle:
            runs[name] = list(csv.DictReader(handle))
        assert ("dB)" in result.output) == bool(extra)
    assert all(row["valid_usdr"] == "" for row in runs["plain"])
    assert all(math.isfinite(float(row["valid_usdr"])) for row in runs["sdr"])
    # the extra pass changes nothing else: same crops, same losses
    for plain, sdr in zip(runs["plain"], runs["sdr"], strict=True):
        assert plain["train_loss"] == sdr["train_loss"]
        assert plain["valid_loss"] == sdr["valid_loss"]


def test_eval_writes_museval_json_and_summary(run, musdb_root, tmp_path):
    result = mstrain("eval", "--run", run, "--root", musdb_root, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "test" / "Artist - Song.json").read_text())
    assert [t["name"] for t in scores["targets"]] == list(STEM_NAMES)
    sdr = [float(f["metrics"]["SDR"]) for t in scores["targets"] for f in t["frames"]]
    assert len(sdr) == 4 * 2 and all(math.isfinite(v) for v in sdr)
    with open(tmp_path / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["source"] for r in rows] == [*STEM_NAMES, "mean"]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("csdr", "usdr"))
    assert "| vocals |" in result.output
    assert (tmp_path / "summary.md").read_text() in result.output


def test_eval_usdr_only_gives_the_same_usdr_without_museval(run, musdb_root, tmp_path):
    full, quick = tmp_path / "full", tmp_path / "quick"
    assert mstrain("eval", "--run", run, "--root", musdb_root, "--out", full).exit_code == 0
    result = mstrain("eval", "--run", run, "--root", musdb_root, "--out", quick, "--usdr-only")
    assert result.exit_code == 0, result.output
    assert not (quick / "test").exists()  # no museval JSON
    scores = json.loads((quick / "per_track.json").read_text())
    reference = json.loads((full / "per_track.json").read_text())
    assert scores == {
        track: {source: {"usdr": s["usdr"]} for source, s in sources.items()}
        for track, sources in reference.items()
    }
    assert "| mean | - |" in result.output
    assert json.loads((full / "eval.json").read_text()) == {
        "run": str(run),
        "seed": 0,
        "usdr_only": False,
    }
    assert mstrain("eval", "--run", run, "--root", musdb_root, "--out", full, "--usdr-only")
    assert not list((full / "test").glob("*.json"))  # no frames of an earlier eval left
    bad = mstrain("eval", "--model", "nmf", "--root", musdb_root, "--usdr-only")
    assert bad.exit_code == 2 and "--usdr-only applies to --run only" in bad.output


@pytest.mark.parametrize(("rate", "channels", "frames"), [(SR, 2, 12345), (11025, 1, 7001)])
def test_separate_keeps_length_rate_and_channels(run, tmp_path, rate, channels, frames):
    song = tmp_path / "song.wav"
    sf.write(song, np.random.default_rng(0).uniform(-0.5, 0.5, (frames, channels)), rate)
    result = mstrain("separate", "--run", run, song, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    for stem in STEM_NAMES:
        info = sf.info(tmp_path / "out" / "song" / f"{stem}.wav")
        assert (info.frames, info.samplerate, info.channels) == (frames, rate, channels)


def test_one_chunk_equals_a_plain_forward(run):
    model, _ = checkpoint.load_run_model(run)
    model.eval()
    mix = torch.randn(2, 3000)
    chunked = overlap_add(model, mix, frames=4000, overlap=1000, device=torch.device("cpu"))
    with torch.no_grad():
        plain = model(torch.nn.functional.pad(mix, (0, 1000))[None])[0, ..., :3000]
    assert torch.allclose(chunked, plain, atol=1e-6)


@pytest.mark.parametrize("length", [2999, 3000, 3001, 9000, 10001])
def test_chunks_cover_any_length(run, length):
    model, _ = checkpoint.load_run_model(run)
    out = overlap_add(model.eval(), torch.randn(2, length), 3000, 750, torch.device("cpu"))
    assert out.shape == (len(STEM_NAMES), 2, length) and torch.isfinite(out).all()


def bad_inputs(data: Path, run: Path, tmp: Path) -> dict[str, tuple[list[object], str]]:
    text = tmp / "notes.wav"
    text.write_text("not audio")
    return {
        "missing dataset": (["--data", tmp / "nowhere", "--out", tmp / "r1"], "does not exist"),
        "empty selection": (
            ["--data", data, "--where", "mode == 'none'", "--out", tmp / "r2"],
            "selects no items",
        ),
        "unknown model": (["--data", data, "--model", "nope", "--out", tmp / "r3"], "'nope'"),
        "other model's checkpoint": (
            ["--data", data, "--model", "bsrnn", "--target", "vocals", "--out", run, "--resume"],
            "holds a 'unet' model, not the requested 'bsrnn'",
        ),
        "run exists": (["--data", data, "--out", run], "--resume"),
        "bad model arg": (["--data", data, "--model-arg", "widths", "--out", tmp / "r4"], "KEY"),
        "missing run (eval)": (["eval", "--run", tmp / "norun", "--root", tmp], "does not exist"),
        "no musdb": (["eval", "--run", run, "--root", tmp], "no MUSDB18 tracks"),
        "missing run (separate)": (["separate", "--run", tmp / "norun", text], "does not exist"),
        "unreadable song": (["separate", "--run", run, text], "cannot read song"),
        "missing song": (["separate", "--run", run, tmp / "none.wav"], "does not exist"),
    }


def test_target_all_trains_one_band_split_model_per_source(data, musdb_root, tmp_path):
    """BSRNN learns one source per model: `--target all` makes four runs that eval stacks."""
    out = tmp_path / "bsrnn"
    tiny = [
        "--segment",
        "0.5",
        "--workers",
        "0",
        "--valid-fraction",
        "0.25",
        "--batches-per-epoch",
        "2",
    ]
    sizes = ["dim=8", "num_layers=1", "n_fft=256", "hop_length=64"]
    args = [a for size in sizes for a in ("--model-arg", size)]
    result = mstrain("--data", data, "--model", "bsrnn", "--out", out, "--epochs", 1, *tiny, *args)
    assert result.exit_code == 0, result.output
    assert "parameters" in result.output
    for source in STEM_NAMES:
        config = checkpoint.load(out / source / checkpoint.LAST)["config"]
        assert config["data"]["target"] == source
        assert config["loop"]["batch_size"] == 2  # BSRNN's recipe, as no --batch-size was given
    model, payloads = checkpoint.load_run_model(out)
    assert model.sources == STEM_NAMES and set(payloads) == set(STEM_NAMES)
    assert (
        mstrain("eval", "--run", out, "--root", musdb_root, "--out", tmp_path / "e").exit_code == 0
    )
    with open(tmp_path / "e" / "summary.csv", newline="") as handle:
        assert [r["source"] for r in csv.DictReader(handle)] == [*STEM_NAMES, "mean"]


def test_bad_inputs_give_one_line(data, run, tmp_path):
    for case, (args, message) in bad_inputs(data, run, tmp_path).items():
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 2, (case, result.output)
        assert "Traceback" not in result.output, case
        assert result.stderr.startswith("mstrain: error: "), (case, result.stderr)
        assert result.stderr.count("\n") == 1, (case, result.stderr)
        assert message in result.stderr, (case, result.stderr)


def test_stale_checkpoint_temp_files_are_removed_on_resume(tmp_path):
    from train.checkpoint import remove_stale_temps

    (tmp_path / ".last.pt.tmp-4242").write_bytes(b"half a checkpoint")
    (tmp_path / "last.pt").write_bytes(b"kept")
    remove_stale_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_sigterm_keeps_the_last_epoch_and_prints_the_resume_command(data, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    command = [sys.executable, "-m", "train", "--data", str(data), "--out", str(out)]
    command += ["--epochs", "50", *map(str, TINY)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "last.pt").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted by SIGTERM: ") and last.endswith("--resume")
    done = checkpoint.load(out / checkpoint.LAST)["epoch"]  # what a resume continues from
    assert 1 <= done < 50
    resumed = mstrain("--data", data, "--out", out, "--epochs", done + 1, *TINY, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert len(losses(out)) == done + 1


def test_separate_names_musdb_songs_by_their_folder_and_refuses_clashes(run, tmp_path):
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, (4000, 2))
    songs = []
    for name in ("A & B - It's 1.0", "C - D"):
        (tmp_path / "hq" / name).mkdir(parents=True)
        sf.write(tmp_path / "hq" / name / "mixture.wav", noise, SR)
        songs.append(tmp_path / "hq" / name / "mixture.wav")
    result = mstrain("separate", "--run", run, *songs, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["A & B - It's 1.0", "C - D"]
    (tmp_path / "other").mkdir()
    sf.write(tmp_path / "other" / "C - D.wav", noise, SR)
    clash = mstrain("separate", "--run", run, songs[1], tmp_path / "other" / "C - D.wav")
    assert clash.exit_code == 2 and "would both be written to OUT/C - D/" in clash.output


def test_unset_flags_take_the_model_recipe():
    from train.config import (
        DataConfig,
        LoopConfig,
        ModelConfig,
        OptimConfig,
        TrainConfig,
        with_recipe,
    )
    from train.models import MODELS

    bare = TrainConfig(
        DataConfig(root=Path("d")), ModelConfig(), OptimConfig(), LoopConfig(out=Path("o"))
    )
    unet = with_recipe(bare, MODELS["unet"].recipe)
    assert (unet.data.segment, unet.optim.weight_decay, unet.loop.batch_size) == (5.0, 1e-5, 4)
    assert unet.loop.batches_per_epoch is None and unet.data.activity_db is None
    bsrnn = with_recipe(bare, MODELS["bsrnn"].recipe)
    assert round(bsrnn.data.segment * 44100) == 262 * 512  # 263 STFT frames, hop 512
    assert (bsrnn.optim.weight_decay, bsrnn.loop.batch_size) == (0.0, 2)
    assert (bsrnn.loop.batches_per_epoch, bsrnn.data.activity_db) == (10_000, -50.0)
    given = dataclasses.replace(bare, data=dataclasses.replace(bare.data, segment=1.5))
    assert with_recipe(given, MODELS["bsrnn"].recipe).data.segment == 1.5


def test_separate_two_stems_and_flac(run, tmp_path):
    song = tmp_path / "song.wav"
    audio = np.random.default_rng(2).uniform(-0.3, 0.3, (4000, 2)).astype(np.float32)
    sf.write(song, audio, SR, subtype="FLOAT")
    args = ["separate", "--run", run, song, "--stem", "vocals"]
    assert mstrain(*args, "--out", tmp_path / "wav").exit_code == 0
    folder = tmp_path / "wav" / "song"
    assert sorted(p.name for p in folder.iterdir()) == ["no_vocals.wav", "vocals.wav"]
    vocals, _ = sf.read(folder / "vocals.wav", dtype="float32")
    rest, _ = sf.read(folder / "no_vocals.wav", dtype="float32")
    np.testing.assert_allclose(vocals + rest, audio, atol=1e-6)  # the two stems sum to the song
    flac = mstrain(*args, "--out", tmp_path / "flac", "--format", "flac", "--subtype", "PCM_24")
    assert flac.exit_code == 0, flac.output
    assert sf.info(tmp_path / "flac" / "song" / "vocals.flac").subtype == "PCM_24"
    bad = mstrain(*args, "--format", "flac")
    assert bad.exit_code == 2 and "flac holds PCM only" in bad.output
