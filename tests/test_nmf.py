"""The NMF + k-means baseline: finite scores, seeded repeats, one-to-one oracle, chunks, CLI."""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from augment.demo import write_demo_dataset
from manifests import STEM_NAMES
from train.cli import main
from train.errors import TrainError
from train.evaluate import whole_sdr
from train.nmf import NMFConfig, chunk_bounds, oracle_assignment, separate_nmf
from train.validation import open_musdb, track_audio

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 16000  # the demo generator's lowest rate
SECONDS = 2
FAST = {"n_fft": 512, "hop": 128, "max_iter": 50}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Two demo songs, one in train/, one in test/, cut to their last 2 s (museval's time grows
    with the length; the songs' intros leave stems silent, which museval refuses)."""
    root = tmp_path_factory.mktemp("demo")
    write_demo_dataset(root, 2, 5.0, seed=0, fmt="wav", sample_rate=SR)
    for path in root.glob("*/*/*.wav"):
        info = sf.info(path)
        audio, _ = sf.read(path, start=-SECONDS * SR, dtype="float32")
        sf.write(path, audio, SR, subtype=info.subtype)
    return root


@pytest.fixture(scope="module")
def song(root) -> np.ndarray:
    """(1 + 4, channels, time): the test song's mixture, then its four stems."""
    return track_audio(open_musdb(root, "test")[0], STEM_NAMES)


def test_eval_scores_all_four_targets_and_says_oracle(root, tmp_path):
    result = CliRunner().invoke(
        main, ["eval", "--model", "nmf", "--root", str(root), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    (track,) = (tmp_path / "test").glob("*.json")
    scores = json.loads(track.read_text())
    assert [t["name"] for t in scores["targets"]] == list(STEM_NAMES)
    with open(tmp_path / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["source"] for r in rows] == [*STEM_NAMES, "mean"]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("csdr", "usdr"))
    summary = (tmp_path / "summary.md").read_text()
    assert "oracle assignment" in summary and "8 components" in summary
    assert summary in result.output


def test_same_seed_same_numbers_other_seed_other_numbers(song):
    mixture, references = song[0], song[1:]
    first, _ = separate_nmf(mixture, references, SR, NMFConfig(seed=3, **FAST))
    again, _ = separate_nmf(mixture, references, SR, NMFConfig(seed=3, **FAST))
    other, _ = separate_nmf(mixture, references, SR, NMFConfig(seed=4, **FAST))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_long_input_goes_in_chunks_that_sum_to_the_mixture(song):
    """Four clusters for four targets: every cluster is used, so the estimates add back up."""
    mixture, references = song[0], song[1:]
    config = NMFConfig(chunk_seconds=0.45, **FAST)
    estimates, chunks = separate_nmf(mixture, references, SR, config)
    assert len(chunks) == 5
    assert [(c.start, c.stop) for c in chunks] == chunk_bounds(mixture.shape[-1], 7200)
    assert all(c.stop - c.start <= 0.45 * SR for c in chunks)
    assert all(sorted(c.clusters) == [0, 1, 2, 3] for c in chunks)
    assert estimates.shape == references.shape
    assert np.allclose(estimates.sum(axis=0), mixture, atol=1e-4)


@pytest.mark.parametrize(("length", "frames"), [(1, 10), (10, 10), (11, 10), (99, 10), (12345, 97)])
def test_chunk_bounds_cover_in_near_equal_pieces(length, frames):
    bounds = chunk_bounds(length, frames)
    assert bounds[0][0] == 0 and bounds[-1][1] == length
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) <= frames and max(sizes) - min(sizes) <= 1
    assert len(bounds) == -(-length // frames)


def test_assignment_is_one_to_one_even_when_one_cluster_fits_all():
    """Cluster 0 is the best match for every target; only one target may have it."""
    rng = np.random.default_rng(0)
    references = rng.standard_normal((4, 2, 800))
    shared = references.sum(axis=0)
    clusters = np.stack([shared, *(r + 2 * rng.standard_normal(r.shape) for r in references[1:])])
    best = [max(range(4), key=lambda c: whole_sdr(ref, clusters[c])) for ref in references]
    assert best == [0, 0, 0, 0]
    assignment = oracle_assignment(clusters, references)
    assert sorted(assignment) == [0, 1, 2, 3]
    assert assignment[1:] == (1, 2, 3)


def test_fewer_clusters_than_targets_leave_targets_silent(song):
    mixture, references = song[0], song[1:]
    estimates, (chunk,) = separate_nmf(mixture, references, SR, NMFConfig(clusters=2, **FAST))
    assert sorted(chunk.clusters) == [-1, -1, 0, 1]
    silent = [not estimates[t].any() for t in range(4)]
    assert silent == [c == -1 for c in chunk.clusters]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"components": 0}, "--components"),
        ({"clusters": 9}, re.escape("between 1 and --components (8)")),
        ({"chunk_seconds": 0.0}, "--chunk-seconds"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(TrainError, match=message):
        NMFConfig(**kwargs)


def test_bad_inputs_give_one_line(root, tmp_path):
    cases = {
        "nmf with a run": (["--model", "nmf", "--run", tmp_path, "--root", root], "needs no --run"),
        "neither": (["--root", root], "--run RUN"),
        "too many clusters": (
            ["--model", "nmf", "--root", root, "--clusters", 9, "--out", tmp_path],
            "--clusters",
        ),
        "no musdb": (["--model", "nmf", "--root", tmp_path, "--out", tmp_path], "no MUSDB18"),
    }
    for case, (args, message) in cases.items():
        result = CliRunner().invoke(main, ["eval", *(str(a) for a in args)])
        assert result.exit_code == 2, (case, result.output)
        assert result.stderr.startswith("mstrain: error: "), (case, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, (case, result.stderr)
