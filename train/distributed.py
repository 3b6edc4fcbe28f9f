"""DistributedDataParallel under `torchrun`: which process this is, and what it shares.

`torchrun --nproc-per-node N -m train ...` starts N copies of the command with RANK,
WORLD_SIZE and LOCAL_RANK in the environment. Each copy trains on its slice of every global
batch (`train.crops.CropSampler`), DDP averages the gradients, and only rank 0 writes logs and
checkpoints. gloo carries the traffic on CPU, nccl on CUDA (one GPU per process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from train.errors import TrainError


@dataclass(frozen=True)
class Process:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    distributed: bool = False
    """Started by torchrun, in a process group, even a group of one: `--nproc-per-node 1`
    runs the DDP and nccl path on a single GPU, the smoke test of benchmarks/gpu_check.sh."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start(device: torch.device) -> tuple[Process, torch.device]:
    """Join the process group torchrun set up (if any); the device this process trains on."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 and "RANK" not in os.environ:  # a plain process, not torchrun's
        return Process(), device
    if "RANK" not in os.environ:
        raise TrainError(
            f"WORLD_SIZE is {world} but RANK is unset; start the processes with torchrun"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    process = Process(int(os.environ["RANK"]), world, local_rank, distributed=True)
    if device.type == "cuda":
        if process.local_rank >= torch.cuda.device_count():
            raise TrainError(
                f"local rank {process.local_rank} has no GPU (torch sees "
                f"{torch.cuda.device_count()}); start at most that many processes per node"
            )
        device = torch.device("cuda", process.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():  # `--target all` trains several models in one group
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return process, device


def stop(process: Process) -> None:
    """The end of one training: every process waits for the others (the group stays up)."""
    if process.distributed:
        dist.barrier()


def shutdown() -> None:
    """The end of the command: leave the process group. One group serves every model of
    `--target all`; a second init_process_group in one process failed in 2 of 3 gloo runs
    ("connectFullMesh ... Connection refused")."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_over_processes(values: list[float], process: Process, device: torch.device) -> list[float]:
    """Element-wise sums of `values` over all processes (the values themselves when alone)."""
    if not process.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
