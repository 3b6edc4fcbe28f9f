"""Small synthetic rendered datasets, written through the real `manifests` writer.

Tests of the dataset tools and of the trainer need a dataset without running the render stage;
this builds one with the same writer, layout and records that `msaug render` uses. Stems are
decaying tones and noise bursts, distinct per stem, so a model can learn something from them.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests import DatasetWriter, ItemRecord, StemRecord
from manifests.files import quantize, write_audio
from manifests.schema import MIXTURE, STEM_NAMES, audio_path

EFFECT_COLUMNS = {"pitch_shift": ["semitones"], "reverb": ["room_size", "wet_level"]}
"""What an effect registry would declare; the factory's datasets only pitch-shift."""

MODES = ("coherent", "incoherent")


def _stem_audio(stem: str, rng: np.random.Generator, frames: int, sr: int) -> np.ndarray:
    t = np.arange(frames) / sr
    base = {"vocals": 440.0, "drums": 0.0, "bass": 55.0, "other": 220.0}[stem]
    if stem == "drums":
        hits = (np.sin(2 * np.pi * 2.0 * t) > 0.95).astype(np.float32)
        mono = rng.standard_normal(frames) * 0.3 * hits
    else:
        f0 = base * 2 ** (rng.integers(-3, 4) / 12)
        mono = 0.2 * np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    pan = rng.uniform(0.3, 0.7)
    return np.stack([mono * (1 - pan), mono * pan]).astype(np.float32)


def make_dataset(
    root: str | Path,
    n_items: int = 6,
    seconds: float = 1.0,
    sample_rate: int = 8000,
    seed: int = 0,
) -> Path:
    """Write `n_items` items (alternating modes, every other vocals pitch-shifted) to `root`."""
    root = Path(root)
    identity = {"factory": True, "seed": seed, "seconds": seconds, "sample_rate": sample_rate}
    writer = DatasetWriter.open(
        root, identity, {"command": "tests.factory"}, STEM_NAMES, EFFECT_COLUMNS
    )
    frames = round(seconds * sample_rate)
    items, stems = [], []
    for index in range(n_items):
        rng = np.random.default_rng([seed, index])
        item_id = f"{index:07d}"
        quantized = {}
        for stem in STEM_NAMES:
            audio = quantize(_stem_audio(stem, rng, frames, sample_rate), "PCM_16")
            quantized[stem] = audio
            effects = (
                [{"kind": "pitch_shift", "params": {"semitones": 1.5}}]
                if stem == "vocals" and index % 2
                else []
            )
            rel = audio_path("train", item_id, stem, "wav")
            info = write_audio(root / rel, audio, sample_rate)
            stems.append(
                StemRecord(
                    item_id=item_id,
                    stem=stem,
                    source_track=f"Track {index % 3}",
                    source_subset="train",
                    offset_seconds=float(index),
                    duration_seconds=seconds,
                    gain_db=0.0,
                    effects=effects,
                    path=rel,
                    checksum=info.checksum,
                    bytes=info.bytes,
                    rms_db=float(20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-12)),
                    peak=float(np.abs(audio).max()),
                    activity=1.0,
                )
            )
        mixture = quantize(sum(quantized.values()), "PCM_16")
        rel = audio_path("train", item_id, MIXTURE, "wav")
        info = write_audio(root / rel, mixture, sample_rate)
        items.append(
            ItemRecord(
                item_id=item_id,
                subset="train",
                role="train",
                mode=MODES[index % 2],
                seconds=seconds,
                sample_rate=sample_rate,
                channels=2,
                num_frames=frames,
                run_seed=seed,
                item_index=index,
                item_seed=index,
                mixture_path=rel,
                checksum=info.checksum,
                bytes=info.bytes,
                common_scale=1.0,
                mixture_rms_db=float(20 * np.log10(np.sqrt(np.mean(mixture**2)) + 1e-12)),
                mixture_peak=float(np.abs(mixture).max()),
                attempts=1,
            )
        )
    writer.write_part("0000000", items, stems)
    writer.finalize()
    return root


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """`folder` over HTTP on 127.0.0.1 (a free port) while the block runs; yields its URL.
    A plain static server: no range requests, as many object stores' public URLs."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
