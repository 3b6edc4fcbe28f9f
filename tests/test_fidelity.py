"""Faithful effects: identity at neutral values, documented levels, the source's coherent mode
and attempt rule, and no resume across draw schemes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from sources_factory import make_source_root, stem_signal

from augment.chain import apply_chain
from augment.config import build_config
from augment.effects import (
    WET_NORM,
    Chorus,
    Compressor,
    Gain,
    PeakEQ,
    PitchShift,
    Reverb,
    TimeStretch,
    rms,
)
from augment.render import RenderSettings, render_dataset
from manifests import Dataset, ManifestError

SR = 22050


def _db(after: np.ndarray, before: np.ndarray) -> float:
    return 20 * math.log10(rms(after) / rms(before))


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """A broadband stereo stem with a moving level (noise bursts: the test tracks' drums).
    Tones are a poor probe of a reverb's level: a sustained sine and its reverberated copy
    interfere, by an amount that depends on the phase."""
    return stem_signal("drums", 1, 3 * SR, SR)


def _render(audio, *effects):
    return apply_chain(audio, SR, effects, audio.shape[1], "pedalboard", "fast")


def test_no_shift_and_no_stretch_bypass_rubber_band_bit_for_bit(music):
    out = _render(music, PitchShift(0.0), TimeStretch(1.0))
    assert np.array_equal(out, music)


@pytest.mark.parametrize(
    "effect",
    [
        Reverb(room_size=0.5, damping=0.5, wet_level=0.0, dry_level=1.0),
        Compressor(threshold_db=-20.0, ratio=1.0),
        Gain(gain_db=0.0),
        PeakEQ(cutoff_hz=1000.0, gain_db=0.0),
        Chorus(rate_hz=1.0, mix=0.0),
    ],
)
def test_neutral_parameters_are_the_identity(music, effect):
    out = _render(music, effect)
    assert abs(_db(out, music)) < 0.1
    if isinstance(effect, Reverb):
        assert np.array_equal(out, music)


def test_reverb_levels_are_amplitudes(music):
    dry_only = _render(music, Reverb(room_size=0.5, damping=0.5, wet_level=0.0, dry_level=0.7))
    assert _db(dry_only, music) == pytest.approx(20 * math.log10(0.7), abs=0.01)
    wet = _render(music, Reverb(room_size=0.5, damping=0.5, wet_level=1.0, dry_level=0.0))
    assert rms(wet) / rms(music) == pytest.approx(WET_NORM, rel=1e-3)


@pytest.mark.parametrize(("room", "damping"), [(0.2, 0.8), (0.5, 0.5), (0.8, 0.2)])
def test_the_source_reverb_mix_keeps_the_level(music, room, damping):
    out = _render(music, Reverb(room_size=room, damping=damping))
    assert abs(_db(out, music)) < 1.0


def test_compressor_makeup_is_applied_as_stated(music):
    plain = _render(music, Compressor(threshold_db=-30.0, ratio=4.0))
    lifted = _render(music, Compressor(threshold_db=-30.0, ratio=4.0, makeup_db=6.0))
    assert _db(lifted, plain) == pytest.approx(6.0, abs=1e-3)
    restoring = Compressor(threshold_db=-30.0, ratio=4.0).restoring_makeup(music, SR)
    assert restoring > 1.0
    fixed = _render(music, Compressor(threshold_db=-30.0, ratio=4.0, makeup_db=restoring))
    assert abs(_db(fixed, music)) < 0.01


def test_a_stretch_longer_than_one_reads_less_source(music):
    """duration_factor > 1 is slower: the same output length needs fewer source frames."""
    from augment.chain import source_frames

    frames = SR
    assert source_frames([TimeStretch(1.25)], frames, SR) < frames
    assert source_frames([TimeStretch(0.8)], frames, SR) > frames


def _settings(root, **changes) -> RenderSettings:
    base = {"root": str(root), "seconds": 1.0, "sample_rate": SR, "quality": "fast"}
    return RenderSettings(**{**base, **changes})


def test_coherent_items_share_their_whole_chain(source_root, tmp_path):
    out = tmp_path / "coherent"
    render_dataset(_settings(source_root, mode="coherent"), out, n=6, jobs=1, progress=False)
    stems = Dataset.open(out).stems
    for _, rows in stems.groupby("item_id"):
        chains = [
            [(e["kind"], {k: v for k, v in e["params"].items() if k not in PER_STEM}) for e in c]
            for c in rows["effects"]
        ]
        assert all(chain == chains[0] for chain in chains)
    assert stems["reverb_applied"].any() and stems["compressor_applied"].any()


PER_STEM = {"threshold_db", "makeup_db"}
"""Level-relative values: the compressor's threshold follows each stem's peak, its makeup
each stem's level."""


def test_semi_coherent_items_draw_per_stem(source_root, tmp_path):
    out = tmp_path / "semi"
    render_dataset(_settings(source_root, mode="semi-coherent"), out, n=6, jobs=1, progress=False)
    stems = Dataset.open(out).stems
    differs = [rows["effects"].map(len).nunique() > 1 for _, rows in stems.groupby("item_id")]
    assert any(differs)


def test_coherent_share_is_one_line_of_config(source_root, tmp_path):
    config = tmp_path / "share.toml"
    config.write_text('[coherent]\nshare = ["pitch_shift", "time_stretch"]\n')
    out = tmp_path / "old-style"
    settings = _settings(source_root, mode="coherent", config_path=str(config))
    render_dataset(settings, out, n=6, jobs=1, progress=False)
    stems = Dataset.open(out).stems
    for _, rows in stems.groupby("item_id"):
        assert rows["pitch_shift_semitones"].nunique(dropna=False) == 1
    assert stems.groupby("item_id")["reverb_applied"].nunique().max() == 2
    with pytest.raises(Exception, match=r"coherent\.share"):
        build_config({"coherent": {"share": ["wobble"]}})


def test_a_sparse_song_is_replaced_by_another_song(tmp_path):
    """Coherent items draw a new song after 10 unusable offsets (up to 3 songs)."""
    root = make_source_root(
        tmp_path / "src", tracks=2, seconds=4.0, sample_rate=SR, subsets=("train",)
    )
    sparse = root / "train" / "Track 00" / "vocals.wav"
    sf.write(sparse, np.zeros((4 * SR, 2), np.float32), SR)
    out = tmp_path / "out"
    summary = render_dataset(_settings(root, mode="coherent"), out, n=8, jobs=1, progress=False)
    assert summary.total_items == 8 and not summary.failed
    items = Dataset.open(out)
    assert set(items.stems["source_track"]) == {"Track 01"}
    assert items.items["attempts"].max() > 10  # some item gave up on the sparse song


def test_extending_a_render_of_another_draw_scheme_is_refused(source_root, tmp_path):
    out = tmp_path / "old"
    render_dataset(_settings(source_root), out, n=2, jobs=1, progress=False)
    header = json.loads((out / "dataset.json").read_text())
    header["identity"]["draw_scheme"] = 2
    (out / "dataset.json").write_text(json.dumps(header))
    with pytest.raises(ManifestError, match="draw_scheme: was 2, now 3"):
        render_dataset(_settings(source_root), out, n=3, jobs=1, progress=False)


def test_rerender_names_builds_that_differ():
    from augment.rerender import library_drift

    recorded = {"pedalboard": "0.9.16", "rubberband": "3.3.0"}
    assert library_drift(recorded, {"pedalboard": "0.9.16", "rubberband": "3.3.0"}) == ()
    assert library_drift(recorded, {"pedalboard": "0.9.17"}) == (
        "pedalboard: was 0.9.16, now 0.9.17",
        "rubberband: was 3.3.0, now missing",
    )


def test_old_draw_schemes_rerender_reverb_with_pedalboard_levels(music):
    from augment.effects import PedalboardReverb, as_rendered_by

    reverb = Reverb(room_size=0.5, damping=0.5)
    old = as_rendered_by(reverb, 2)
    assert isinstance(old, PedalboardReverb) and as_rendered_by(reverb, 3) is reverb
    dry = _render(music, as_rendered_by(Reverb(0.5, 0.5, wet_level=0.0, dry_level=0.7), 2))
    assert rms(dry) / rms(music) == pytest.approx(1.4, abs=0.01)


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_duration_factor_above_one_is_slower_in_the_output(factor):
    """Clicks every 2205 frames come out every 2205 * factor frames."""
    frames, period = 4 * SR, 2205
    clicks = np.zeros(frames + SR, dtype=np.float32)
    clicks[period // 2 :: period] = 0.8
    audio = np.stack([clicks, clicks])
    from augment.chain import source_frames

    need = source_frames([TimeStretch(factor)], frames, SR)
    out = apply_chain(audio[:, :need], SR, [TimeStretch(factor)], frames, "pedalboard", "best")
    envelope = np.abs(out[0])
    peaks = [i for i in range(1, frames - 1) if envelope[i] > 0.3 * envelope.max()]
    onsets = [p for k, p in enumerate(peaks) if k == 0 or p - peaks[k - 1] > period // 3]
    spacing = float(np.median(np.diff(onsets)))
    assert spacing == pytest.approx(period * factor, rel=0.05)
