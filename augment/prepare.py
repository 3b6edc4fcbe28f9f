"""`msaug prepare`: decode a `.stem.mp4` MUSDB18 root once into an HQ-layout wav cache.

Reading a 10 s segment from `.stem.mp4` starts ffmpeg and decodes from the nearest seek point
on every read; a render of 20,000 items reads 80,000 segments. Decoding each song once and
reading wav slices afterwards is far cheaper (docs/performance.md has the numbers). The cache is
an ordinary MUSDB18-HQ root, so everything that reads HQ reads it.

Resumable: a track is done when its `mixture.wav` exists, which is written last and atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from augment.errors import SourceError
from augment.source_index import index_sources
from augment.sources import STEM_IDS, SourceRoot, Track
from manifests.files import write_audio
from manifests.lock import WriterLock, worker_hold
from manifests.schema import MIXTURE


@dataclass(frozen=True)
class PrepareSummary:
    decoded: int
    skipped: int
    out: Path


def _decode_track(track: Track, out: Path, subtype: str, token: str) -> None:
    with worker_hold(out, token):
        _decode_into(track, out, subtype)


def _decode_into(track: Track, out: Path, subtype: str) -> None:
    import stempeg

    try:
        stems, rate = stempeg.read_stems(str(track.path), dtype=np.float32)
    except Exception as exc:  # ffmpeg failures surface as several exception types
        raise SourceError(f"{track.path} cannot be decoded ({exc}); replace the file") from exc
    folder = out / track.subset / track.name
    # Stems first, mixture last: the mixture's presence marks the track as complete.
    for name in sorted(STEM_IDS, key=lambda n: n == MIXTURE):
        audio = np.asarray(stems[STEM_IDS[name]], dtype=np.float32).T
        write_audio(folder / f"{name}.wav", audio, int(rate), subtype)


def prepare_cache(
    root: str | Path, out: str | Path, jobs: int = -1, subtype: str = "FLOAT"
) -> PrepareSummary:
    """Decode every track of a stem root into `out`; tracks already there are skipped.

    FLOAT keeps the decoder's output exactly, so cache reads equal direct mp4 reads.
    """
    source = SourceRoot.open(root, form="stem")
    out = Path(out)
    lock = WriterLock.acquire(out, "msaug prepare")
    try:
        tracks = source.tracks()
        todo = [t for t in tracks if not (out / t.subset / t.name / f"{MIXTURE}.wav").exists()]
        progress = tqdm(total=len(todo), desc="decoding", unit="track", disable=not todo)
        parallel = Parallel(n_jobs=jobs, return_as="generator_unordered")
        decode = delayed(_decode_track)
        for _ in parallel(decode(track, out, subtype, lock.token) for track in todo):
            progress.update()
        progress.close()
        index_sources(out, progress=True)  # the cache is the next render's source root
    finally:
        lock.release(remove=True)
    return PrepareSummary(decoded=len(todo), skipped=len(tracks) - len(todo), out=out)
