"""Training crops per second from packed shards, local and over HTTP, against the folder loader.

One run, one temporary dataset (44.1 kHz stereo items of 10 s, tests/factory.py), packed with
`msaug pack`; every loader at the dataset's rate (no resampling), batch 4, the same crop
length, with 0 and 2 workers:

- baseline: the folder loader (`mstrain --data FOLDER`, soundfile reads of each crop's frames);
- shards from a local folder (`mstrain --data SHARDS`): streamed, every member hashed,
  whole items decoded, crops cut in memory;
- the same shards from a static HTTP server on 127.0.0.1 started here (fsspec, no range
  requests), which adds the transport.

The page cache holds everything, so this measures the loaders, not a disk or a network.

    python benchmarks/shards.py
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from manifests import STEM_NAMES
from manifests.pack import pack
from train.config import DataConfig, LoopConfig
from train.data import make_loaders, set_epoch
from train.songs import open_training_data

FACTORY = Path(__file__).resolve().parent.parent / "tests" / "factory.py"
RATE = 44100


def load_factory():
    spec = importlib.util.spec_from_file_location("factory", FACTORY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def crops_per_second(data: str, workers: int, crops: int, segment: float) -> float:
    """Crops per second of one epoch after a warm-up epoch (workers start every epoch for
    shards, so their start-up is in the figure; for folders they persist)."""
    dataset = open_training_data(data)
    config = DataConfig(root=data, segment=segment, workers=workers, valid_fraction=0.1)
    loop = LoopConfig(out=Path("unused"), batch_size=4, batches_per_epoch=crops // 4)
    train, _ = make_loaders(dataset, config, loop, STEM_NAMES, RATE, cuda=False)
    set_epoch(train, 0)
    for _ in train:
        pass
    set_epoch(train, 1)
    started = time.perf_counter()
    count = sum(len(batch.mix) for batch in train)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--crops", type=int, default=48)
    parser.add_argument("--segment", type=float, default=5.0)
    parser.add_argument("--shard-size", type=int, default=20_000_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    factory = load_factory()
    with tempfile.TemporaryDirectory() as folder:
        root = factory.make_dataset(Path(folder) / "ds", args.items, 10.0, RATE, seed=0)
        shards = Path(folder) / "shards"
        pack(root, shards, shard_size=args.shard_size)
        n_shards = len(list(shards.glob("*.tar")))
        print(
            f"{args.crops} crops of {args.segment} s per epoch, {args.items} items of 10 s at "
            f"{RATE} Hz in {n_shards} shards, batch 4, 1 torch thread"
        )
        with factory.serve_folder(Path(folder)) as url:
            for workers in (0, 2):
                base = crops_per_second(str(root), workers, args.crops, args.segment)
                local = crops_per_second(str(shards), workers, args.crops, args.segment)
                remote = crops_per_second(f"{url}/shards", workers, args.crops, args.segment)
                print(f"  {workers} workers:")
                print(f"    folder loader:     {base:7.1f} crops/s  1.00x")
                print(f"    local shards:      {local:7.1f} crops/s  {local / base:.2f}x")
                print(f"    shards over HTTP:  {remote:7.1f} crops/s  {remote / base:.2f}x")


if __name__ == "__main__":
    main()
