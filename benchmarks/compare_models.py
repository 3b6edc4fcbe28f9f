"""NMF baseline, U-Net and BSRNN side by side on the same MUSDB-layout test tracks.

The whole pipeline through the real command lines, so anyone can rerun it:
1. `msaug demo-data` writes demo songs (unless --root names a MUSDB18 root);
2. `msaug render` renders an augmented training set from their train/ songs;
3. `mstrain train` trains a tiny U-Net (all four sources) and a tiny BSRNN (vocals only: one
   model per source) for a bounded wall-clock time each;
4. `mstrain eval` scores both runs and the NMF + k-means baseline (`--model nmf`, oracle
   assignment) on the test/ songs;
5. one markdown table of cSDR / uSDR per source and system.

Every command is printed as it runs, and the table goes to stdout (and --table, if given).
The defaults fit ~10 minutes on 2 CPU cores; the numbers on demo songs say how the systems
rank on this toy data, not what they reach on MUSDB18.

    python benchmarks/compare_models.py
    python benchmarks/compare_models.py --root ~/musdb18hq --minutes 60 --sr 44100
"""

from __future__ import annotations

import argparse
import csv
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCES = ("vocals", "drums", "bass", "other", "mean")


def command(name: str) -> str:
    """The console script installed next to this interpreter (msaug, mstrain)."""
    return str(Path(sys.executable).with_name(name))


def run(line: str) -> None:
    """Run one command line (paths quoted by the caller), printed first as the page shows it."""
    words = shlex.split(line)
    print("$", shlex.join([Path(words[0]).name, *words[1:]]), flush=True)
    subprocess.run(words, check=True)


def read_summary(folder: Path) -> dict[str, tuple[float, float]]:
    """(cSDR, uSDR) per source from `mstrain eval`'s summary.csv; a mean only over all four."""
    with open(folder / "summary.csv", newline="") as handle:
        rows = {r["source"]: (float(r["csdr"]), float(r["usdr"])) for r in csv.DictReader(handle)}
    if len(rows) < len(SOURCES):
        rows.pop("mean")
    return rows


def table(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    """Rows: sources and their mean; columns: cSDR / uSDR per system ("–": not trained)."""
    names = list(results)
    lines = [
        "| source | " + " | ".join(f"{n} cSDR / uSDR (dB)" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for source in SOURCES:
        cells = []
        for name in names:
            score = results[name].get(source)
            cells.append("–" if score is None else f"{score[0]:.2f} / {score[1]:.2f}")
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="MUSDB18 root; default: fresh demo songs")
    parser.add_argument("--work", type=Path, help="Working folder; default: a temporary one")
    parser.add_argument("--tracks", type=int, default=8, help="Demo songs (a quarter are test)")
    parser.add_argument("--seconds", type=float, default=20.0, help="Length of each demo song")
    parser.add_argument("--sr", type=int, default=16000, help="Demo and render sample rate")
    parser.add_argument("--items", type=int, default=120, help="Rendered training items")
    parser.add_argument("--minutes", type=float, default=2.0, help="Training budget per model")
    parser.add_argument("--table", type=Path, help="Also write the table here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        work = args.work or Path(temp)
        start = time.perf_counter()
        results = compare(args, work)
        print(f"\n{table(results)}\ntotal {(time.perf_counter() - start) / 60:.1f} min")
        if args.table:
            args.table.write_text(table(results))


def compare(args: argparse.Namespace, work: Path) -> dict[str, dict[str, tuple[float, float]]]:
    msaug, mstrain = command("msaug"), command("mstrain")
    q = shlex.quote
    root = args.root or work / "demo"
    if args.root is None:
        run(
            f"{msaug} demo-data {q(str(root))} --tracks {args.tracks} --seconds {args.seconds:g} "
            f"--sr {args.sr} --seed 0"
        )
    aug, runs = q(str(work / "aug")), work / "runs"
    run(
        f"{msaug} render --root {q(str(root))} --out {aug} --mode mix:coherent=0.5,incoherent=0.5 "
        f"--n {args.items} --seconds 4 --sr {args.sr} --seed 0 --quiet"
    )
    common = (
        f"--data {aug} --max-minutes {args.minutes:g} --epochs 1000 --patience 1000 "
        "--batches-per-epoch 10 --workers 1 --seed 0 --device cpu"
    )
    # The U-Net runs at the source's 16 kHz whatever --sr is; eval resamples to it and back.
    run(
        f"{mstrain} train {common} --model unet --target all --segment 4 --batch-size 4 "
        f"--model-arg sample_rate=16000 --out {q(str(runs / 'unet'))}"
    )
    run(
        f"{mstrain} train {common} --model bsrnn --target vocals --segment 2 --batch-size 2 "
        f"--model-arg sample_rate={args.sr} --model-arg dim=16 --model-arg num_layers=1 "
        f"--out {q(str(runs / 'bsrnn'))}"
    )
    systems = [
        ("nmf", "NMF + k-means (oracle)", "--model nmf"),
        ("unet", "U-Net", f"--run {q(str(runs / 'unet'))} --device cpu"),
        ("bsrnn", "BSRNN (vocals)", f"--run {q(str(runs / 'bsrnn'))} --device cpu"),
    ]
    results = {}
    for slug, label, how in systems:
        out = work / "eval" / slug
        run(f"{mstrain} eval {how} --root {q(str(root))} --subset test --out {q(str(out))}")
        results[label] = read_summary(out)
    return results


if __name__ == "__main__":
    main()
