"""DistributedDataParallel on CPU: 2 gloo processes under torchrun train as one process would
with their combined batch, write from rank 0 alone, and resume."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from factory import make_dataset

from manifests.pack import pack
from train import checkpoint
from train.crops import CropSampler

SR = 8000
# BSRNN has no BatchNorm (whose statistics would be per process on CPU) and no dropout, so
# the two processes together compute exactly the single process's gradients.
TINY = [
    "--model", "bsrnn", "--target", "vocals", "--segment", "0.5", "--workers", "0",
    "--valid-fraction", "0.25", "--batches-per-epoch", "2", "--device", "cpu",
    "--model-arg", "dim=8", "--model-arg", "num_layers=1",
    "--model-arg", "n_fft=256", "--model-arg", "hop_length=64",
]  # fmt: skip


def run(command: list[str], *args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*command, *TINY, *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def single(*args: object) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "train"], *args)


def torchrun(processes: int, *args: object) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return run([*launcher, "--nproc-per-node", str(processes), "-m", "train"], *args)


def two_processes(*args: object) -> subprocess.CompletedProcess:
    return torchrun(2, *args)


def weights(out: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(out / checkpoint.LAST)["model"]["state"]


def log_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_ranks_split_every_global_batch():
    ranks = [CropSampler(5, 12, seed=3, rank=r, world=2, batch=3) for r in (0, 1)]
    alone = CropSampler(5, 12, seed=3)
    for sampler in (*ranks, alone):
        sampler.set_epoch(4)
    parts = [list(r) for r in ranks]
    assert [len(p) for p in parts] == [6, 6]
    together = [key for step in range(2) for p in parts for key in p[3 * step : 3 * step + 3]]
    assert together == list(alone)
    with pytest.raises(ValueError, match="do not split"):
        CropSampler(5, 10, seed=3, world=2, batch=3)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_and_resume(tmp_path):
    data = make_dataset(tmp_path / "data", 8, 1.0, SR)
    alone, ddp = tmp_path / "alone", tmp_path / "ddp"
    single("--data", data, "--out", alone, "--epochs", 2, "--batch-size", 2)
    first = two_processes("--data", data, "--out", ddp, "--epochs", 1, "--batch-size", 1)
    assert first.stdout.count("epoch 1:") == 1  # rank 0 alone reports
    assert "2 processes" in first.stdout
    two_processes("--data", data, "--out", ddp, "--epochs", 2, "--batch-size", 1, "--resume")

    assert checkpoint.load(ddp / checkpoint.LAST)["world_size"] == 2
    assert sorted(p.name for p in ddp.iterdir() if p.suffix == ".pt") == ["best.pt", "last.pt"]
    expected, found = weights(alone), weights(ddp)
    assert expected.keys() == found.keys()
    for name in expected:
        torch.testing.assert_close(found[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)
    for mine, theirs in zip(log_rows(ddp), log_rows(alone), strict=True):
        for key in ("train_loss", "valid_loss"):
            assert float(mine[key]) == pytest.approx(float(theirs[key]), rel=1e-4)


def test_one_process_under_torchrun_trains_in_a_group_of_one(tmp_path):
    """`--nproc-per-node 1` takes the DDP path (process group, DDP wrapper, all-reduce) with
    one process, as the GPU check's nccl smoke run does, and gives the plain run's weights."""
    data = make_dataset(tmp_path / "data", 8, 1.0, SR)
    alone, group = tmp_path / "alone", tmp_path / "group"
    single("--data", data, "--out", alone, "--epochs", 1, "--batch-size", 2)
    done = torchrun(1, "--data", data, "--out", group, "--epochs", 1, "--batch-size", 2)
    assert ", 1 process\n" in done.stdout
    expected, found = weights(alone), weights(group)
    for name in expected:
        torch.testing.assert_close(found[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_target_all_trains_four_models_in_one_process_group(tmp_path, attempt):
    """One gloo group for the whole command: re-initialising it per source was flaky."""
    data = make_dataset(tmp_path / "data", 8, 1.0, SR)
    done = two_processes(
        "--data", data, "--out", tmp_path / "all", "--epochs", 1, "--target", "all"
    )
    assert done.stdout.count("epoch 1:") == 4
    for source in ("vocals", "drums", "bass", "other"):
        assert (tmp_path / "all" / source / checkpoint.LAST).is_file()


@pytest.mark.slow
def test_two_gloo_processes_stream_disjoint_shards(tmp_path):
    """Under torchrun each rank streams its own shards and takes as many steps as the other
    (unequal steps would hang DDP's all-reduce until the timeout)."""
    data = make_dataset(tmp_path / "data", 8, 1.0, SR)
    shards = tmp_path / "shards"
    pack(data, shards, shard_size=100_000)
    out = tmp_path / "ddp"
    done = two_processes("--data", shards, "--out", out, "--epochs", 2, "--batch-size", 1)
    assert "2 processes" in done.stdout and done.stdout.count("epoch 2:") == 1
    assert [row["epoch"] for row in log_rows(out)] == ["1", "2"]
