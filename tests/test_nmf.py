"""The NMF + k-means baseline: clustering axis, greedy oracle once per song, seeds, chunks, CLI."""

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
from scipy.optimize import linear_sum_assignment

from augment.demo import write_demo_dataset
from manifests import STEM_NAMES
from train.cli import main
from train.errors import TrainError
from train.nmf import (
    NMFConfig,
    _seed,
    chunk_bounds,
    cluster_estimates,
    factorise,
    greedy_assignment,
    oracle_assignment,
    separate_nmf,
)
from train.sdr import whole_sdr
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
    assert "rows of H" in summary and "once per song" in summary
    assert summary in result.output


def test_eval_options_choose_the_variants(root, tmp_path):
    args = ["--per-chunk", "--chunk-seconds", "0.5", "--cluster-on", "bases"]
    result = CliRunner().invoke(
        main, ["eval", "--model", "nmf", "--root", str(root), "--out", str(tmp_path), *args]
    )
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "summary.md").read_text()
    assert "columns of W" in summary and "per 0.5 s chunk" in summary


def test_same_seed_same_numbers_other_seed_other_numbers(song):
    mixture, references = song[0], song[1:]
    first, _ = separate_nmf(mixture, references, SR, NMFConfig(seed=3, **FAST))
    again, _ = separate_nmf(mixture, references, SR, NMFConfig(seed=3, **FAST))
    other, _ = separate_nmf(mixture, references, SR, NMFConfig(seed=4, **FAST))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def three_components() -> np.ndarray:
    """(2, bins, frames) magnitude of three parts: A and B play at the same times (the same
    on/off pattern, B quieter, each with its own amplitudes), C plays in between; B and C have
    neighbouring spectral peaks, A's is far away. The right channel is the left at half level."""
    bins, frames = 64, 240
    rng = np.random.default_rng(0)
    on = (np.arange(frames) // 20) % 2 == 0
    centres = np.array([8, 40, 44])
    bases = np.exp(-0.5 * ((np.arange(bins)[:, None] - centres) / 3.0) ** 2)
    activations = np.stack([on, 0.3 * on, ~on]) * rng.random((3, frames))
    left = (bases @ activations + 1e-3).astype(np.float32)
    return np.stack([left, 0.5 * left])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clusters_group_components_by_their_activations(seed):
    """The report clusters "the K components (rows of H)": A and B (same times, different
    spectra) share a cluster and C has the other. By bases the grouping is B with C instead."""
    magnitude = three_components()
    found = {}
    for axis in ("activations", "bases"):
        config = NMFConfig(components=3, clusters=2, cluster_on=axis)
        bases, activations, labels = factorise(magnitude, config, seed)
        assert activations.shape == (2, 3, magnitude.shape[-1])
        peaks = bases.argmax(axis=0)
        assert sorted(peaks) == [8, 40, 44]  # NMF found the three parts
        found[axis] = dict(zip(peaks.tolist(), labels.tolist(), strict=True))
    by_time = found["activations"]
    assert by_time[8] == by_time[40] != by_time[44]
    by_spectrum = found["bases"]
    assert by_spectrum[40] == by_spectrum[44] != by_spectrum[8]


def test_greedy_takes_targets_in_order_not_the_best_total():
    """Vocals keeps cluster 0 (5 dB) though drums need it more (9 dB vs -20 dB): greedy in the
    order vocals, drums, bass, other, ties to the lower cluster, unlike the best one-to-one map."""
    scores = np.array(
        [
            [5.0, 4.9, 0.0, 0.0],
            [9.0, -20.0, 1.0, 1.0],
            [0.0, 0.0, 3.0, 2.0],
            [0.0, 0.0, 3.0, 2.0],
        ]
    )
    assert greedy_assignment(scores) == (0, 2, 3, 1)
    _, best_total = linear_sum_assignment(scores, maximize=True)
    assert tuple(best_total) == (1, 0, 2, 3)
    assert greedy_assignment(scores[::-1]) == (2, 3, 0, 1)  # the order decides
    assert greedy_assignment(scores[:, :2]) == (0, 1, -1, -1)  # clusters run out
    assert greedy_assignment(scores[:2]) == (0, 2)  # clusters left over are dropped


def test_one_fit_and_one_assignment_per_song(song):
    """Default: however long the song, one NMF, one clustering and one greedy assignment by
    whole-song SDR; each target's estimate is its cluster's signal over the whole song."""
    mixture, references = song[0], song[1:]
    config = NMFConfig(chunk_seconds=0.45, **FAST)  # a chunk length the song mode ignores
    estimates, (fit,) = separate_nmf(mixture, references, SR, config)
    assert (fit.start, fit.stop) == (0, mixture.shape[-1])
    assert sorted(fit.clusters) == [0, 1, 2, 3]
    clusters = cluster_estimates(mixture, config, _seed(config.seed, 0))
    scores = np.array([[whole_sdr(r, c) for c in clusters] for r in references])
    assert fit.clusters == greedy_assignment(scores)
    assert np.array_equal(estimates, clusters[list(fit.clusters)])
    whole = NMFConfig(per_chunk=True, chunk_seconds=SECONDS, **FAST)  # one chunk: the same fit
    assert np.array_equal(separate_nmf(mixture, references, SR, whole)[0], estimates)


def test_per_chunk_variant_fits_and_assigns_every_chunk(song):
    mixture, references = song[0], song[1:]
    config = NMFConfig(per_chunk=True, chunk_seconds=0.45, **FAST)
    assert "per 0.45 s chunk" in config.describe()
    estimates, chunks = separate_nmf(mixture, references, SR, config)
    assert len(chunks) == 5
    assert [(c.start, c.stop) for c in chunks] == chunk_bounds(mixture.shape[-1], 7200)
    assert all(c.stop - c.start <= 0.45 * SR for c in chunks)
    assert all(sorted(c.clusters) == [0, 1, 2, 3] for c in chunks)
    assert estimates.shape == references.shape and np.isfinite(estimates).all()


@pytest.mark.parametrize(("length", "frames"), [(1, 10), (10, 10), (11, 10), (99, 10), (12345, 97)])
def test_chunk_bounds_cover_in_near_equal_pieces(length, frames):
    bounds = chunk_bounds(length, frames)
    assert bounds[0][0] == 0 and bounds[-1][1] == length
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) <= frames and max(sizes) - min(sizes) <= 1
    assert len(bounds) == -(-length // frames)


def test_assignment_is_one_to_one_even_when_one_cluster_fits_all():
    """Cluster 0 is the best match for every target; only the first target (vocals) gets it."""
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
    assert chunk.clusters[2:] == (-1, -1)  # greedy in order: bass and other find none left
    silent = [not estimates[t].any() for t in range(4)]
    assert silent == [c == -1 for c in chunk.clusters]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"components": 0}, "--components"),
        ({"clusters": 9}, re.escape("between 1 and --components (8)")),
        ({"chunk_seconds": 0.0}, "--chunk-seconds"),
        ({"cluster_on": "rows"}, "--cluster-on must be one of activations, bases"),
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
        "chunks without --per-chunk": (
            ["--model", "nmf", "--root", root, "--chunk-seconds", 10, "--out", tmp_path],
            "only with --per-chunk",
        ),
    }
    for case, (args, message) in cases.items():
        result = CliRunner().invoke(main, ["eval", *(str(a) for a in args)])
        assert result.exit_code == 2, (case, result.output)
        assert result.stderr.startswith("mstrain: error: "), (case, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, (case, result.stderr)
