"""The render stage: invariants, determinism, resume after SIGKILL, modes, effects, rerender."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sources_factory import make_source_root

from augment.chain import apply_chain, source_frames
from augment.config import build_config
from augment.effects import PitchShift, TimeStretch
from augment.errors import ConfigError
from augment.plan import build_effect
from augment.render import RenderSettings, render_dataset
from augment.rerender import rerender_item
from manifests import Dataset
from manifests.schema import PARTS_DIR, STEM_NAMES, table_file

SR = 22050


def _settings(root: Path, **changes) -> RenderSettings:
    base = {"root": str(root), "seconds": 1.5, "sample_rate": SR, "quality": "fast"}
    return RenderSettings(**{**base, **changes})


@pytest.fixture(scope="module")
def rendered(source_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("render") / "out"
    render_dataset(
        _settings(source_root, mode="mix:coherent=0.5,incoherent=0.5"),
        out,
        n=8,
        jobs=1,
        progress=False,
    )
    return out


def _checksums(out: Path) -> dict[str, str]:
    dataset = Dataset.open(out)
    return {
        **dict(zip(dataset.items.item_id, dataset.items.checksum, strict=True)),
        **dict(zip(dataset.stems.path, dataset.stems.checksum, strict=True)),
    }


def test_invariants(rendered):
    dataset = Dataset.open(rendered)
    assert len(dataset) == 8 and set(dataset.items["mode"]) == {"coherent", "incoherent"}
    for item in dataset.items.itertuples():
        mixture, rate = sf.read(dataset.path(item.mixture_path), dtype="float32")
        assert rate == SR and mixture.shape == (round(1.5 * SR), 2)
        rows = dataset.stems[dataset.stems.item_id == item.item_id]
        assert list(rows.stem) == list(STEM_NAMES)
        stems = [sf.read(dataset.path(p), dtype="float32")[0] for p in rows.path]
        np.testing.assert_array_equal(mixture, np.sum(stems, axis=0))
        for audio in [mixture, *stems]:
            assert np.isfinite(audio).all() and np.abs(audio).max() < 1.0
        # musdb's HQ layout: the dataset is also a MUSDB18-HQ root.
        assert dataset.path(item.mixture_path).parent.name == item.item_id


def test_readable_by_musdb(rendered):
    import musdb

    tracks = musdb.DB(root=str(rendered), is_wav=True, subsets="train")
    assert len(tracks) == 8 and tracks[0].audio.shape[1] == 2


def test_same_bytes_for_one_and_two_workers(source_root, rendered, tmp_path):
    out = tmp_path / "two"
    render_dataset(
        _settings(source_root, mode="mix:coherent=0.5,incoherent=0.5"),
        out,
        n=8,
        jobs=2,
        batch_size=3,
        progress=False,
    )
    assert _checksums(out) == _checksums(rendered)
    first, second = Dataset.open(rendered), Dataset.open(out)
    assert first.stems.equals(second.stems) and first.items.equals(second.items)


def test_larger_n_extends(source_root, rendered, tmp_path):
    out = tmp_path / "grow"
    settings = _settings(source_root, mode="mix:coherent=0.5,incoherent=0.5")
    render_dataset(settings, out, n=5, jobs=1, progress=False)
    summary = render_dataset(settings, out, n=8, jobs=1, progress=False)
    assert (summary.rendered, summary.skipped, summary.total_items) == (3, 5, 8)
    assert _checksums(out) == _checksums(rendered)


def render_command(source_root: Path, out: Path, *extra: str) -> list[str]:
    """`msaug render` in a subprocess, with the settings of the `rendered` fixture."""
    return [
        sys.executable, "-m", "augment", "render", "--root", str(source_root), "--out", str(out),
        "--n", "8", "--seconds", "1.5", "--sr", str(SR), "--quality", "fast",
        "--mode", "mix:coherent=0.5,incoherent=0.5", "--quiet", *extra,
    ]  # fmt: skip


def test_resume_after_sigkill_matches_uninterrupted(source_root, rendered, tmp_path):
    out = tmp_path / "killed"
    command = render_command(source_root, out, "--jobs", "1", "--batch-size", "1")
    process = subprocess.Popen(command, start_new_session=True)
    parts = out / PARTS_DIR / "items"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(parts.glob("*.parquet"))) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / table_file("items")).exists(), "render finished before the kill"
    subprocess.run(command, check=True)
    assert _checksums(out) == _checksums(rendered)
    leftovers = [p for p in out.rglob("*") if ".tmp-" in p.name or p.parent.name == "parts"]
    assert leftovers == []


def test_other_settings_on_existing_out_are_refused(source_root, rendered):
    from manifests import ManifestError

    with pytest.raises(ManifestError, match="seed: was 0, now 1"):
        render_dataset(
            _settings(source_root, mode="mix:coherent=0.5,incoherent=0.5", seed=1),
            rendered,
            n=8,
            jobs=1,
            progress=False,
        )


def test_coherent_mode_shares_pitch_and_tempo(source_root, tmp_path):
    out = tmp_path / "coherent"
    render_dataset(_settings(source_root, mode="coherent"), out, n=6, jobs=1, progress=False)
    stems = Dataset.open(out).stems
    for _, rows in stems.groupby("item_id"):
        assert rows.source_track.nunique() == 1 and rows.offset_seconds.nunique() == 1
        for column in ("pitch_shift_semitones", "time_stretch_duration_factor"):
            assert rows[column].nunique(dropna=False) == 1
    assert stems.time_stretch_applied.any()


def _clicks(frames: int, period: int, width: int = 64) -> np.ndarray:
    signal_ = np.zeros(frames, dtype=np.float32)
    for start in range(period // 2, frames - width, period):
        signal_[start : start + width] = np.hanning(width) * 0.8
    return np.stack([signal_, signal_])


def _onsets(audio: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    envelope = np.abs(audio).max(axis=0)
    above = envelope > threshold * envelope.max()
    starts = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    keep = np.concatenate([[True], np.diff(starts) > 200]) if len(starts) else starts
    return starts[keep]


def test_coherent_stems_keep_onsets_aligned(tmp_path):
    root = tmp_path / "clicks" / "train" / "Clicks"
    root.mkdir(parents=True)
    frames = 6 * SR
    for k, stem in enumerate(STEM_NAMES):
        tone = np.sin(2 * np.pi * (200 + 150 * k) * np.arange(frames) / SR).astype(np.float32)
        sf.write(root / f"{stem}.wav", (_clicks(frames, SR // 4) * (0.5 + 0.5 * tone)).T, SR)
    config = tmp_path / "fx.toml"
    config.write_text(
        "[effects.pitch_shift]\np = 0\n[effects.time_stretch]\np = 1\n"
        "[effects.compressor]\np = 0\n[effects.reverb]\np = 0\n"
    )
    out = tmp_path / "out"
    render_dataset(
        _settings(tmp_path / "clicks", mode="coherent", config_path=str(config)),
        out,
        n=2,
        jobs=1,
        progress=False,
    )
    dataset = Dataset.open(out)
    for item in dataset.items.itertuples():
        rows = dataset.stems[dataset.stems.item_id == item.item_id]
        onsets = [_onsets(sf.read(dataset.path(p), dtype="float32")[0].T) for p in rows.path]
        assert all(len(o) == len(onsets[0]) for o in onsets)
        assert np.abs(np.array(onsets) - onsets[0]).max() <= 64


def _dominant_frequency(audio: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio[0] * np.hanning(audio.shape[1])))
    return float(np.fft.rfftfreq(audio.shape[1], 1 / sr)[np.argmax(spectrum)])


@pytest.mark.parametrize("backend", ["pedalboard", "pyrubberband"])
@pytest.mark.parametrize("quality", ["fast", "best"])
@pytest.mark.parametrize("semitones", [-2.0, 1.5])
def test_pitch_shift_moves_a_sine_by_the_semitone_ratio(backend, quality, semitones):
    """A pitch shift alone (stretch factor 1): pyrubberband once dropped it silently."""
    frames = 2 * SR
    effects = [PitchShift(semitones)]
    n = source_frames(effects, frames, SR)
    sine = np.sin(2 * np.pi * 440.0 * np.arange(n) / SR).astype(np.float32) * 0.5
    out = apply_chain(np.stack([sine, sine]), SR, effects, frames, backend, quality)
    assert out.shape == (2, frames)
    expected = 440.0 * 2 ** (semitones / 12)
    assert abs(_dominant_frequency(out[:, SR // 2 :], SR) - expected) / expected < 0.01


@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_time_stretch_scales_onset_spacing_without_trailing_silence(factor):
    """duration_factor > 1 is longer: clicks come further apart, and less source is read."""
    frames = 3 * SR
    effects = [TimeStretch(duration_factor=factor)]
    n = source_frames(effects, frames, SR)
    assert n >= frames / factor
    period = SR // 2
    out = apply_chain(_clicks(n, period), SR, effects, frames, "pedalboard", "best")
    assert out.shape == (2, frames)
    spacing = np.median(np.diff(_onsets(out)))
    assert abs(spacing - period * factor) / (period * factor) < 0.03
    tail = out[:, -period:]
    assert np.abs(tail).max() > 0.1, "stretched output ends in silence"


def test_pyrubberband_backend_gives_exact_length():
    frames = SR
    effects = [PitchShift(1.0), TimeStretch(1.1)]
    n = source_frames(effects, frames, SR)
    sine = np.sin(2 * np.pi * 330.0 * np.arange(n) / SR).astype(np.float32) * 0.5
    out = apply_chain(np.stack([sine, sine]), SR, effects, frames, "pyrubberband", "fast")
    assert out.shape == (2, frames) and np.abs(out[:, -1000:]).max() > 0.1


def test_rerender_reproduces_every_file(rendered):
    for item_id in ("0000000", "0000005"):
        report = rerender_item(rendered, item_id)
        assert report.ok, report.matches


def test_manifest_records_every_effect(rendered):
    stems = Dataset.open(rendered).stems
    for row in stems.itertuples():
        kinds = [e["kind"] for e in row.effects]
        assert row.pitch_shift_applied == ("pitch_shift" in kinds)
        assert row.reverb_applied == ("reverb" in kinds)
        if row.compressor_applied:
            assert row.compressor_threshold_db < 0 and 2 <= row.compressor_ratio <= 6


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"effects": {"reverb": {"p": 1.5}}}, r"effects\.reverb\.p must be in \[0, 1\]"),
        ({"effects": {"reverb": {"room_size": [0.8, 0.2]}}}, "is inverted"),
        ({"effects": {"wah": {"p": 1}}}, "unknown effect 'wah'"),
        ({"effects": {"reverb": {"roomsize": 0.5}}}, "unknown key 'roomsize'"),
        ({"stems": {"voice": {}}}, r"unknown stem\(s\) \['voice'\]"),
        ({"suitability": {"min_rms": -1}}, "must not be negative"),
        ({"effects": {"time_stretch": {"duration_factor": [0.1, 1.0]}}}, "outside"),
        ({"effects": {"time_stretch": {"factor": [0.8, 1.2]}}}, "was a playback rate"),
        (
            {"effects": {"compressor": {"threshold_db": -20.0, "threshold_rel": 0.5}}},
            r"give one of \['threshold_db', 'threshold_rel'\], not both",
        ),
    ],
)
def test_bad_configs_are_refused(data, message):
    with pytest.raises(ConfigError, match=message):
        build_config(data)


def test_an_absolute_compressor_threshold_replaces_the_relative_default():
    config = build_config(
        {
            "effects": {"compressor": {"threshold_db": [-30.0, -10.0]}},
            "stems": {"bass": {"effects": {"compressor": {"threshold_rel": 0.5}}}},
        }
    )

    def ranges(stem: str) -> dict[str, tuple[float, float]]:
        (spec,) = [s for s in config.effects[stem] if s.kind == "compressor"]
        return {name: (low, high) for name, low, high in spec.ranges}

    assert ranges("vocals") == {"threshold_db": (-30.0, -10.0), "ratio": (2.0, 6.0)}
    assert ranges("bass") == {"threshold_rel": (0.5, 0.5), "ratio": (2.0, 6.0)}
    (spec,) = [s for s in config.effects["drums"] if s.kind == "compressor"]
    draws = [spec.draw(np.random.default_rng(seed), "incoherent") for seed in range(20)]
    segment = np.full((2, 100), 0.5, dtype=np.float32)
    effects = [build_effect("compressor", d, segment, SR) for d in draws if d]
    assert len(effects) > 5
    assert all(-30.0 <= e.threshold_db <= -10.0 for e in effects)


def test_bad_config_file_writes_nothing(source_root, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[effects.reverb]\np = 2\n")
    with pytest.raises(ConfigError):
        render_dataset(
            _settings(source_root, config_path=str(config)),
            tmp_path / "out",
            n=2,
            jobs=1,
            progress=False,
        )
    assert not (tmp_path / "out").exists()


def test_config_adds_pedalboard_effects_and_restricts_modes(source_root, tmp_path):
    config = tmp_path / "fx.toml"
    config.write_text(
        '[stems.drums.effects.highpass]\np = 1\ncutoff_hz = [50, 100]\nmodes = ["incoherent"]\n'
        "[stems.bass]\ngain_db = [-6, -3]\n"
    )
    out = tmp_path / "out"
    render_dataset(
        _settings(source_root, mode="mix:coherent=0.5,incoherent=0.5", config_path=str(config)),
        out,
        n=6,
        jobs=1,
        progress=False,
    )
    dataset = Dataset.open(out)
    wide = dataset.wide
    has_highpass = wide.drums_highpass_applied
    assert (has_highpass == (wide["mode"] == "incoherent")).all()
    assert wide.bass_gain_db.between(-6, -3).all()


def test_undrawable_items_are_reported_not_dropped(tmp_path):
    root = make_source_root(
        tmp_path / "src", tracks=2, seconds=4.0, sample_rate=SR, subsets=("train",)
    )
    for track in (root / "train").iterdir():
        sf.write(track / "vocals.wav", np.zeros((4 * SR, 2), np.float32), SR)
    summary = render_dataset(
        _settings(root, seconds=1.0), tmp_path / "out", n=3, jobs=1, progress=False
    )
    assert summary.total_items == 0 and sorted(summary.failed) == [0, 1, 2]
    assert summary.rejected == {"vocals:quiet": 60}
    header = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert header["provenance"]["failed_items"]["1"] == {"vocals:quiet": 20}


def test_merged_shards_equal_the_single_run(source_root, rendered, tmp_path):
    from manifests.merge import merge

    settings = _settings(source_root, mode="mix:coherent=0.5,incoherent=0.5")
    parts = []
    for k in range(3):
        parts.append(tmp_path / f"shard{k}")
        render_dataset(settings, parts[-1], n=8, jobs=1, progress=False, shard=(k, 3))
        assert all(i % 3 == k for i in Dataset.open(parts[-1]).items.item_index)
    merge(parts, tmp_path / "merged")
    single, merged = Dataset.open(rendered), Dataset.open(tmp_path / "merged")
    assert merged.items.equals(single.items) and merged.stems.equals(single.stems)
    for rel in [*single.items.mixture_path, *single.stems.path]:
        assert merged.path(rel).read_bytes() == single.path(rel).read_bytes()
    assert rerender_item(tmp_path / "merged", "0000004").ok


@pytest.mark.parametrize("backend", ["dask", "ray"])  # both are in the dev extra
def test_cluster_backends_give_the_loky_bytes(backend, source_root, rendered, tmp_path):
    out = tmp_path / backend
    result = subprocess.run(
        render_command(source_root, out, "--backend", backend, "--jobs", "2"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert _checksums(out) == _checksums(rendered)
