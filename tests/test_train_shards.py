"""mstrain --data SHARDS: crops streamed from packed shards, from a folder, a local HTTP
server and a pipe command; the same crops for the same seed and workers, and after a resume;
validation songs from the shards; damaged, truncated and hostile shards refused."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from factory import serve_folder
from sources_factory import make_source_root

from augment.render import RenderSettings, render_dataset
from manifests import STEM_NAMES
from manifests.pack import pack
from train.cli import main
from train.config import DataConfig, LoopConfig
from train.data import make_loaders, set_epoch
from train.errors import TrainError
from train.shard_source import ShardSource
from train.shard_stream import assign_shards
from train.songs import open_training_data

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 22050
TINY = [
    "--segment", "0.5", "--batch-size", "2", "--batches-per-epoch", "3",
    "--model-arg", f"sample_rate={SR}", "--model-arg", "widths=[4,8,16]",
    "--model-arg", "bottleneck=16",
]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A render of 6 one-second items and one validation song (4 s)."""
    base = tmp_path_factory.mktemp("shards")
    root = make_source_root(base / "src", tracks=3, seconds=4.0, sample_rate=SR)
    settings = RenderSettings(root=str(root), seconds=1.0, sample_rate=SR, quality="fast")
    render_dataset(settings, base / "ds", n=6, jobs=1, progress=False, valid_count=1)
    return base / "ds"


@pytest.fixture(scope="module")
def shards(folder) -> Path:
    out = folder.parent / "packed"
    pack(folder, out, shard_size=500_000)  # about one item per shard
    assert len(list(out.glob("*.tar"))) >= 6
    return out


@pytest.fixture(scope="module")
def server(shards):
    """The shard folder served over HTTP on 127.0.0.1 by a plain static server."""
    with serve_folder(shards.parent) as url:
        yield f"{url}/{shards.name}"


def _loaders(data: str, workers: int = 0, rate: int = SR, **options):
    dataset = open_training_data(data)
    config = DataConfig(root=data, workers=workers, segment=0.5, **options)
    loop = LoopConfig(out=Path("unused"), batch_size=2, batches_per_epoch=3, seed=0)
    return make_loaders(dataset, config, loop, STEM_NAMES, rate, cuda=False)


def _epoch(loader, epoch: int) -> list[torch.Tensor]:
    set_epoch(loader, epoch)
    return [torch.cat([batch.mix.flatten(), batch.targets.flatten()]) for batch in loader]


def test_the_same_crops_from_a_folder_http_and_a_pipe(shards, server):
    for workers in (0, 2):
        local = _epoch(_loaders(str(shards), workers)[0], 1)
        assert len(local) == 3 and local[0].shape == (2 * 2 * SR // 2 * 5,)
        again = _epoch(_loaders(str(shards), workers)[0], 1)
        assert all(torch.equal(a, b) for a, b in zip(local, again, strict=True))
        remote = _epoch(_loaders(server, workers)[0], 1)
        piped = _epoch(_loaders(f"pipe:cat {shards}/{{name}}", workers)[0], 1)
        assert all(torch.equal(a, b) for a, b in zip(local, remote, strict=True))
        assert all(torch.equal(a, b) for a, b in zip(local, piped, strict=True))
    train, _ = _loaders(str(shards))
    assert not torch.equal(_epoch(train, 1)[0], _epoch(train, 2)[0])  # each epoch its own


def test_a_crop_is_aligned_and_its_mixture_is_the_sum(shards):
    train, _ = _loaders(str(shards), activity_db=None)
    set_epoch(train, 1)
    batch = next(iter(train))
    assert batch.mix.shape == (2, 2, SR // 2) and batch.targets.shape == (2, 4, 2, SR // 2)
    assert torch.allclose(batch.mix, batch.targets.sum(dim=1), atol=2e-4)
    augmented, _ = _loaders(str(shards), remix=True, gain=(0.25, 1.25), polarity_flip=True)
    set_epoch(augmented, 1)
    batch = next(iter(augmented))
    assert torch.allclose(batch.mix, batch.targets.sum(dim=1), atol=1e-5)


def test_shards_leave_resampling_to_the_device_as_folders_do(shards):
    """--resample-on device: crops at the dataset's rate, as many frames as the loader would
    have resampled (ceil(8000 * 22050 / 16000)); validation songs still at the model's."""
    train, valid = _loaders(str(shards), rate=16000, resample_on="device")
    set_epoch(train, 1)
    assert next(iter(train)).mix.shape == (2, 2, 11025)
    in_loader, _ = _loaders(str(shards), rate=16000, resample_on="loader")
    set_epoch(in_loader, 1)
    assert next(iter(in_loader)).mix.shape == (2, 2, 8000)
    song_mix, _ = next(iter(valid))
    assert song_mix.shape[-1] == 4 * 16000


def test_validation_songs_are_streamed_from_the_shards(folder, shards):
    _, from_shards = _loaders(str(shards))
    _, from_folder = _loaders(str(folder))
    assert "streamed from its shards" in from_shards.dataset.describe()
    streamed, read = list(from_shards), list(from_folder)
    assert len(streamed) == len(read) == 1
    assert torch.equal(streamed[0][0], read[0][0]) and torch.equal(streamed[0][1], read[0][1])


def test_where_fetches_no_shard_without_a_selected_item(shards, monkeypatch):
    opened = []
    original = ShardSource.open

    def recording(self, name):
        opened.append(name)
        return original(self, name)

    monkeypatch.setattr(ShardSource, "open", recording)
    train, _ = _loaders(str(shards), where="item_index < 2")
    opened.clear()
    _epoch(train, 1)
    index = json.loads((shards / "shards.json").read_text())
    holding = {s["name"] for s in index["shards"] if {"0000000", "0000001"} & set(s["items"])}
    assert set(opened) == holding


def test_ranks_and_workers_read_disjoint_shards():
    names = [f"shard-{i:06d}.tar" for i in range(7)]
    for epoch in (1, 2):
        taken = [assign_shards(names, 0, epoch, slot, 4) for slot in range(4)]
        flat = [name for part in taken for name in part]
        assert sorted(flat) == names  # disjoint, and every shard read
    assert assign_shards(names[:2], 0, 1, 3, 4)  # fewer shards than workers: they share


def _training(data: str, out: Path, *extra: object):
    args = ["--data", data, "--out", out, *TINY, "--workers", "0", *extra]
    return CliRunner().invoke(main, [str(a) for a in args])


def _losses(run: Path) -> list[tuple[str, str]]:
    with open(run / "log.csv", newline="") as handle:
        return [(r["train_loss"], r["valid_loss"]) for r in csv.DictReader(handle)]


def test_a_resumed_run_from_http_continues_the_uninterrupted_one(server, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    first = _training(server, straight, "--epochs", 3)
    assert first.exit_code == 0
    assert "best epoch " in first.output and str(straight / "best.pt") in first.output
    assert _training(server, stopped, "--epochs", 1).exit_code == 0
    assert _training(server, stopped, "--epochs", 3, "--resume").exit_code == 0
    assert _losses(stopped) == _losses(straight) and len(_losses(straight)) == 3


def _damaged(shards: Path, tmp_path: Path, change) -> Path:
    copy = tmp_path / "damaged"
    shutil.copytree(shards, copy)
    index = json.loads((copy / "shards.json").read_text())
    name = next(s["name"] for s in index["shards"] if s["items"] == ["0000000"])
    change(copy / name)
    return copy


def _first_epoch_error(data: Path) -> str:
    train, _ = _loaders(str(data), where="item_index == 0")
    with pytest.raises(TrainError) as caught:
        _epoch(train, 1)
    return str(caught.value)


def test_a_flipped_byte_is_refused_naming_the_shard_and_item(shards, tmp_path):
    def flip(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[len(data) // 3] ^= 0xFF  # inside an audio member
        path.write_bytes(bytes(data))

    message = _first_epoch_error(_damaged(shards, tmp_path, flip))
    assert "0000000" in message and "damaged" in message and ".tar" in message


def test_a_truncated_shard_is_refused(shards, tmp_path):
    def truncate(path: Path) -> None:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    message = _first_epoch_error(_damaged(shards, tmp_path, truncate))
    assert ".tar" in message and ("truncated" in message or "lacks" in message)


def test_a_shard_index_pointing_outside_is_refused(shards, tmp_path):
    copy = tmp_path / "hostile"
    shutil.copytree(shards, copy)
    index = json.loads((copy / "shards.json").read_text())
    index["shards"][0]["name"] = "../../outside.tar"
    (copy / "shards.json").write_text(json.dumps(index))
    result = _training(str(copy), tmp_path / "run", "--epochs", 1)
    assert result.exit_code == 2
    assert "outside.tar" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_hostile_file_name_never_reaches_a_pipe_command(shards, tmp_path):
    copy = tmp_path / "hostile-pipe"
    shutil.copytree(shards, copy)
    header = json.loads((copy / "dataset.json").read_text())
    marker = tmp_path / "PWNED"
    header["tables"]["items"][0]["path"] = f"manifest/items/x$(touch {marker.name}).parquet"
    (copy / "dataset.json").write_text(json.dumps(header))
    template = f'pipe:cd {tmp_path} && cat "{copy}/{{name}}"'  # quoted by the user
    with pytest.raises(TrainError, match="not a file name msaug pack writes"):
        open_training_data(template)
    assert not marker.exists()
