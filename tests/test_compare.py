"""`mstrain compare`: paired differences with bootstrap intervals on synthetic score sets."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from train.cli import main
from train.compare import COMPARE_MD, COMPARE_PNG, compare
from train.errors import TrainError

SOURCES = ("vocals", "drums", "bass", "other")


def _eval_dir(
    path,
    base: np.ndarray,
    shift: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
    metrics: tuple[str, ...] = ("usdr", "csdr"),
):
    """An eval folder whose per_track.json holds `base` (tracks x sources) + shift + noise."""
    rng = np.random.default_rng(seed)
    scores = base + shift + noise * rng.standard_normal(base.shape)
    per_track = {
        f"Track {t:02d}": {s: {m: scores[t, j] for m in metrics} for j, s in enumerate(SOURCES)}
        for t in range(len(base))
    }
    path.mkdir(parents=True)
    (path / "per_track.json").write_text(json.dumps(per_track))
    return path


@pytest.fixture
def base():
    return np.random.default_rng(42).normal(2.0, 3.0, size=(40, 4))  # songs differ a lot


def _mean_difference(text: str, metric: str = "uSDR") -> tuple[float, float, float]:
    """(difference, low, high) of the second variant's mean row: `value (+d [+l, +h])`."""
    row = next(line for line in text.splitlines() if line.startswith(f"| mean | {metric} |"))
    cell = row.rstrip(" |").rsplit("|", 1)[1]
    diff, low, high = (float(x) for x in re.findall(r"[-+]\d+\.\d+", cell.split("(", 1)[1]))
    return diff, low, high


def test_a_known_difference_is_found_with_its_interval(tmp_path, base):
    a = _eval_dir(tmp_path / "a", base)
    b = _eval_dir(tmp_path / "b", base, shift=1.0, noise=0.3)
    text = compare([f"base={a}", f"aug={b}"], tmp_path / "out")
    diff, low, high = _mean_difference(text)
    assert low < 1.0 < high and low > 0.5 and high < 1.5 and abs(diff - 1.0) < 0.2
    assert (tmp_path / "out" / COMPARE_MD).read_text() == text
    assert (tmp_path / "out" / COMPARE_PNG).read_bytes()[:4] == b"\x89PNG"


def test_no_difference_gives_an_interval_around_zero(tmp_path, base):
    a = _eval_dir(tmp_path / "a", base)
    b = _eval_dir(tmp_path / "b", base, noise=0.5, seed=1)
    _, low, high = _mean_difference(compare([f"a={a}", f"b={b}"], tmp_path / "out"))
    assert low < 0 < high


def test_seeds_widen_the_interval(tmp_path, base):
    a = _eval_dir(tmp_path / "a", base)
    one = [_eval_dir(tmp_path / "b1", base, shift=1.0, noise=0.1, seed=1)]
    spread = [
        _eval_dir(tmp_path / f"c{k}", base, shift=1.0 + d, noise=0.1, seed=k)
        for k, d in enumerate((-0.8, 0.0, 0.8))
    ]
    width = []
    for runs in (one, spread):
        text = compare([f"a={a}", "b=" + ",".join(map(str, runs))], tmp_path / "out")
        _, low, high = _mean_difference(text)
        width.append(high - low)
    assert width[1] > 2 * width[0]


def test_paired_seeds_cancel_what_a_seed_does_to_every_variant(tmp_path, base):
    """Each seed moves both variants alike (by -0.8, 0, +0.8 dB); b is 1 dB better at every
    seed. Unpaired, the seeds' spread widens the interval; paired, it cancels."""
    shifts = (-0.8, 0.0, 0.8)
    a = [_eval_dir(tmp_path / f"a{k}", base, d, 0.1, k) for k, d in enumerate(shifts)]
    b = [_eval_dir(tmp_path / f"b{k}", base, d + 1.0, 0.1, 10 + k) for k, d in enumerate(shifts)]
    args = ["a=" + ",".join(map(str, a)), "b=" + ",".join(map(str, b))]
    _, low, high = _mean_difference(compare(args, tmp_path / "unpaired"))
    diff, plow, phigh = _mean_difference(compare(args, tmp_path / "paired", paired_seeds=True))
    assert plow < 1.0 < phigh and abs(diff - 1.0) < 0.1
    assert phigh - plow < 0.25 * (high - low)
    assert "k-th runs of all variants paired" in (tmp_path / "paired" / COMPARE_MD).read_text()


def test_paired_seeds_need_as_many_runs_in_every_variant(tmp_path, base):
    a = [_eval_dir(tmp_path / f"a{k}", base, seed=k) for k in range(2)]
    b = _eval_dir(tmp_path / "b", base)
    args = ["a=" + ",".join(map(str, a)), f"b={b}"]
    with pytest.raises(TrainError, match="same number of runs"):
        compare(args, tmp_path / "out", paired_seeds=True)
    result = CliRunner().invoke(main, ["compare", *args, "--paired-seeds"])
    assert result.exit_code == 2 and "same number of runs" in result.output


def test_usdr_only_evals_are_compared_on_usdr(tmp_path, base):
    a = _eval_dir(tmp_path / "a", base, metrics=("usdr",))
    b = _eval_dir(tmp_path / "b", base, shift=1.0, noise=0.3)  # cSDR too: left out
    text = compare([f"a={a}", f"b={b}"], tmp_path / "out")
    assert "| mean | uSDR |" in text and "cSDR |" not in text
    assert "silent estimate scores 0 dB uSDR" in text
    diff, low, high = _mean_difference(text)
    assert low < 1.0 < high and abs(diff - 1.0) < 0.2


def test_paired_seeds_refuse_runs_listed_out_of_seed_order(tmp_path, base):
    def run(name: str, seed: int):
        folder = _eval_dir(tmp_path / name, base, seed=seed)
        (folder / "eval.json").write_text(json.dumps({"run": name, "seed": seed}))
        return folder

    a = [run("a0", 0), run("a1", 1)]
    b = [run("b1", 1), run("b0", 0)]
    args = ["a=" + ",".join(map(str, a)), "b=" + ",".join(map(str, b))]
    with pytest.raises(TrainError, match="different seeds"):
        compare(args, tmp_path / "out", paired_seeds=True)
    compare(args, tmp_path / "out")  # unpaired, the order does not matter
    args[1] = "b=" + ",".join(map(str, reversed(b)))
    compare(args, tmp_path / "out", paired_seeds=True)


@pytest.mark.parametrize(
    ("content", "args"),
    [
        pytest.param(None, ["a=", "b={good}"], id="a variant without folders"),
        pytest.param(None, ["={good}", "b={good}"], id="a variant without label"),
        pytest.param("{}", ["a={good}", "b={bad}"], id="no tracks"),
        pytest.param("[]", ["a={good}", "b={bad}"], id="a list"),
        pytest.param('{"T": {"vocals": {"usdr": "x"}}}', ["a={good}", "b={bad}"], id="text"),
        pytest.param('{"T": {"vocals": 3}}', ["a={good}", "b={bad}"], id="no metrics"),
        pytest.param('{"T": {}}', ["a={good}", "b={bad}"], id="no sources"),
    ],
)
def test_bad_score_files_are_one_line(tmp_path, base, content, args):
    good = _eval_dir(tmp_path / "good", base)
    bad = tmp_path / "bad"
    bad.mkdir()
    if content is not None:
        (bad / "per_track.json").write_text(content)
    argv = [a.format(good=good, bad=bad) for a in args]
    result = CliRunner().invoke(main, ["compare", *argv, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_runs_on_different_tracks_are_refused(tmp_path, base):
    a = _eval_dir(tmp_path / "a", base)
    b = _eval_dir(tmp_path / "b", base[:-1])
    with pytest.raises(TrainError, match="other tracks"):
        compare([f"a={a}", f"b={b}"], tmp_path / "out")


def test_the_command_is_one_line_on_bad_input(tmp_path, base):
    a = _eval_dir(tmp_path / "a", base)
    result = CliRunner().invoke(main, ["compare", f"a={a}"])
    assert result.exit_code == 2 and "at least two variants" in result.output
    result = CliRunner().invoke(main, ["compare", f"a={a}", f"b={tmp_path / 'missing'}"])
    assert result.exit_code == 2 and "needs exactly one per_track.json" in result.output
