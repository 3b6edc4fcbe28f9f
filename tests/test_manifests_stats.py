"""`stats`: every number agrees with the tables; config probabilities are read defensively."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from factory import make_dataset

from manifests import Dataset
from manifests.plots import write_plots
from manifests.schema import DATASET_JSON
from manifests.stats import compute_stats, configured_probabilities, shared_probabilities


@pytest.fixture
def dataset(tmp_path):
    return Dataset.open(make_dataset(tmp_path / "ds", n_items=7))


def _row(frame: pd.DataFrame, **match) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, value in match.items():
        mask &= frame[column] == value
    (index,) = frame.index[mask]
    return frame.loc[index]


def test_numbers_agree_with_the_tables(dataset):
    stats = compute_stats(dataset)
    items, stems = dataset.items, dataset.stems
    vocals = stems[stems["stem"] == "vocals"]
    assert stats.n_items == 7
    assert stats.modes == items["mode"].value_counts().to_dict() == {"coherent": 4, "incoherent": 3}
    pitch = _row(stats.effects, stem="vocals", effect="pitch_shift")
    assert pitch["applied"] == vocals["pitch_shift_applied"].sum() == 3
    assert pitch["rate"] == pytest.approx(3 / 7)
    assert (pitch["rate_coherent"], pitch["rate_incoherent"]) == (0.0, 1.0)
    assert "reverb" not in set(stats.effects["effect"])  # declared, but nothing applies it
    semitones = _row(stats.parameters, stem="vocals", column="pitch_shift_semitones")
    assert (semitones["n"], semitones["min"], semitones["max"]) == (3, 1.5, 1.5)
    assert _row(stats.parameters, stem="bass", column="pitch_shift_semitones")["n"] == 0
    assert "reverb_room_size" not in set(stats.parameters["column"])  # never applied
    rms = _row(stats.levels, source="drums", measure="rms_db")
    drums = stems.loc[stems["stem"] == "drums", "rms_db"]
    assert (rms["min"], rms["median"], rms["max"]) == (drums.min(), drums.median(), drums.max())
    peak = _row(stats.levels, source="mixture", measure="peak")
    assert peak["max"] == items["mixture_peak"].max()
    coverage = stats.coverage[stats.coverage["stem"] == "bass"]
    expected = stems[stems["stem"] == "bass"]["source_track"].value_counts().sort_index()
    assert coverage.set_index("source_track")["items"].to_dict() == expected.to_dict()
    assert coverage["items"].sum() == 7


def test_report_forms_carry_the_same_numbers(dataset):
    stats = compute_stats(dataset)
    data = json.loads(json.dumps(stats.to_dict()))
    assert data["modes"] == stats.modes and len(data["effects"]) == len(stats.effects)
    assert data["effects"][0]["configured_p"] is None
    text = stats.to_text()
    assert "7 items: coherent 4, incoherent 3" in text and "3/7" in text


def test_configured_probability_is_read_where_present(dataset):
    header = json.loads((dataset.root / DATASET_JSON).read_text())
    header["identity"] = {
        "config": {
            "effects": {"vocals": {"pitch_shift": {"p": 0.6, "semitones": [-2, 2]}}},
            "shared": {"pitch_shift": {"p": 0.25}},
        }
    }
    (dataset.root / DATASET_JSON).write_text(json.dumps(header))
    stats = compute_stats(Dataset.open(dataset.root))
    pitch = _row(stats.effects, stem="vocals", effect="pitch_shift")
    assert (pitch["configured_p"], pitch["shared_p"]) == (0.6, 0.25)
    assert pd.isna(_row(stats.effects, stem="drums", effect="pitch_shift")["configured_p"])


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (
            {"effects": {"vocals": {"pitch_shift": {"p": 0.5}, "reverb": {"p": 1}}}},
            {"pitch_shift": 0.5, "reverb": 1.0},
        ),
        ({"effects": {"vocals": {"pitch_shift": {"p": "high"}, "gain": 3}}}, {}),
        ({"effects": ["pitch_shift"]}, {}),
        ({"config": None}, {}),
        (None, {}),
    ],
)
def test_configured_probabilities_tolerate_any_shape(identity, expected):
    assert configured_probabilities(identity, "vocals") == expected
    assert shared_probabilities(identity) == {}


def test_plots_are_written_as_png(dataset, tmp_path):
    paths = write_plots(dataset, compute_stats(dataset), tmp_path / "plots")
    assert [p.name for p in paths] == ["parameters.png", "levels.png", "coverage.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
