"""Per-epoch logs of a run: CSV, TensorBoard and a PNG of the loss curves.

The history lives in the checkpoint; the CSV is rewritten from it after every epoch, so after
`--resume` it holds exactly the epochs of the checkpoint and those run since, never an epoch
that was started but not checkpointed.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from manifests.files import atomic_path

COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_usdr", "lr", "silent_skipped", "seconds")
"""`valid_usdr` is empty unless the run was trained with `--valid-sdr`."""
CSV_NAME = "log.csv"
PLOT_NAME = "loss.png"
TENSORBOARD_DIR = "tensorboard"


class RunLog:
    def __init__(self, out: Path):
        from torch.utils.tensorboard import SummaryWriter  # slow import: only when training

        self.out = out
        self.board = SummaryWriter(str(out / TENSORBOARD_DIR))

    def epoch(self, history: list[dict[str, Any]]) -> None:
        row = history[-1]
        for key in ("train_loss", "valid_loss", "valid_usdr", "lr"):
            if key in row:
                self.board.add_scalar(key, row[key], row["epoch"])
        self.board.flush()
        self.write_csv(history)

    def write_csv(self, history: list[dict[str, Any]]) -> None:
        """log.csv as the whole history (a resume rewrites it from the checkpoint, so a stop
        between the checkpoint and the log never leaves them apart)."""
        with atomic_path(self.out / CSV_NAME) as temp, open(temp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(history)

    def close(self, history: list[dict[str, Any]]) -> None:
        self.board.close()
        if history:
            plot(history, self.out / PLOT_NAME)


def plot(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(epochs, [row["train_loss"] for row in history], label="train")
    axis.plot(epochs, [row["valid_loss"] for row in history], label="valid")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.legend()
    figure.tight_layout()
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png")
    plt.close(figure)
