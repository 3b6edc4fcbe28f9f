"""`msaug demo-data`: write the embedded demo dataset (MUSDB18 cannot be downloaded here)."""

from __future__ import annotations

from pathlib import Path

import click

from augment.demo.writer import FORMATS, write_demo_dataset


@click.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--tracks", default=12, show_default=True, help="Number of songs (1 or more).")
@click.option("--seconds", default=30.0, show_default=True, help="Length of each song (>= 5).")
@click.option("--seed", default=0, show_default=True, help="Run seed; song k draws from (seed, k).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="wav",
    show_default=True,
    help="wav: MUSDB18-HQ folders; stem: MUSDB18 .stem.mp4 (AAC); both: both side by side.",
)
@click.option("--sr", "sample_rate", default=44100, show_default=True, help="Sample rate in Hz.")
@click.option("--jobs", default=1, show_default=True, help="Worker processes; -1 uses all CPUs.")
def demo_data(
    out: Path, tracks: int, seconds: float, seed: int, fmt: str, sample_rate: int, jobs: int
) -> None:
    """Write a procedurally composed multitrack dataset to OUT/{train,test}.

    Songs have a tempo, key and chord loop; drums, bass, chords (pad and arpeggio) and a sung
    melody; and sections where a stem rests. musdb reads the result: musdb.DB(OUT, is_wav=True)
    for wav, musdb.DB(OUT) for stem. The same arguments always give the same files.
    """
    names = write_demo_dataset(out, tracks, seconds, seed, fmt, sample_rate, jobs)
    click.echo(f"wrote {len(names)} tracks to {out}")
