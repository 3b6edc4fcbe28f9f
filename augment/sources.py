"""Source datasets: MUSDB18 (`.stem.mp4`), MUSDB18-HQ and user folders in the HQ layout.

A `SourceRoot` lists tracks per subset and reads one stem segment by (track, offset, duration)
without decoding the whole song: wav through soundfile's start/stop, `.stem.mp4` through
stempeg's ffmpeg seek. Decoding mp4 per segment is slow (see docs/performance.md), so
`msaug prepare` decodes every stem once into an HQ-layout cache that render then reads.

Every layout problem is found when the root is opened, before any work starts, and raised as
one `SourceError` line that says what was expected, what was found and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from augment.errors import SourceError
from manifests.musdb_split import musdb_validation_tracks
from manifests.schema import MIXTURE, STEM_NAMES

SUBSETS = ("train", "test")
STEM_SUFFIX = ".stem.mp4"
# Stream order inside MUSDB18 .stem.mp4 files (musdb's configs/mus.yaml `stem_ids`).
STEM_IDS = {MIXTURE: 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}
Form = Literal["wav", "stem"]
_AAC_FRAME = 1024


@dataclass(frozen=True)
class Track:
    """One multitrack song. `path` is its folder (wav) or its `.stem.mp4` file (stem)."""

    name: str
    subset: str
    form: Form
    path: Path
    sample_rate: int
    num_frames: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.num_frames / self.sample_rate

    def stem_path(self, stem: str) -> Path:
        return self.path / f"{stem}.wav" if self.form == "wav" else self.path


def _wav_track(folder: Path, subset: str) -> Track:
    infos = {}
    for stem in STEM_NAMES:
        path = folder / f"{stem}.wav"
        if not path.is_file():
            found = sorted(p.name for p in folder.iterdir())
            raise SourceError(
                f"track {folder} has no {stem}.wav (found {found}); every track folder needs "
                f"{', '.join(s + '.wav' for s in STEM_NAMES)}"
            )
        try:
            infos[stem] = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise SourceError(f"{path} is not readable audio ({exc}); replace the file") from exc
    rates = {info.samplerate for info in infos.values()}
    channels = {info.channels for info in infos.values()}
    if len(rates) > 1 or len(channels) > 1:
        raise SourceError(
            f"stems of {folder} differ in sample rate {sorted(rates)} or channels "
            f"{sorted(channels)}; all stems of a track must match"
        )
    return Track(
        name=folder.name,
        subset=subset,
        form="wav",
        path=folder,
        sample_rate=rates.pop(),
        num_frames=min(info.frames for info in infos.values()),
        channels=channels.pop(),
    )


def _stem_track(path: Path, subset: str) -> Track:
    import stempeg

    try:
        info = stempeg.Info(str(path))
    except Exception as exc:  # ffprobe failures surface as several exception types
        raise SourceError(f"{path} is not a readable .stem.mp4 ({exc}); replace the file") from exc
    if info.nb_audio_streams < len(STEM_IDS):
        raise SourceError(
            f"{path} has {info.nb_audio_streams} audio streams, expected {len(STEM_IDS)} "
            "(mixture, drums, bass, other, vocals)"
        )
    rate = int(info.sample_rate(STEM_IDS["vocals"]))
    frames = min(int(info.samples(STEM_IDS[s])) for s in STEM_NAMES)
    return Track(
        name=path.name[: -len(STEM_SUFFIX)],
        subset=subset,
        form="stem",
        path=path,
        sample_rate=rate,
        num_frames=frames,
        channels=int(info.channels(STEM_IDS["vocals"])),
    )


def _detect_form(subset_dirs: list[Path]) -> Form | None:
    has_wav = any((d / entry).is_dir() for d in subset_dirs for entry in os.listdir(d))
    has_stem = any(name.endswith(STEM_SUFFIX) for d in subset_dirs for name in os.listdir(d))
    if has_wav:
        return "wav"
    return "stem" if has_stem else None


class SourceRoot:
    """A MUSDB18-style root opened and checked once; tracks are listed per subset."""

    def __init__(self, root: Path, form: Form, tracks: list[Track]):
        self.root = root
        self.form = form
        self._tracks = tracks

    @classmethod
    def open(cls, root: str | Path, form: Literal["auto", "wav", "stem"] = "auto") -> SourceRoot:
        """Check the layout and list all tracks. `auto` prefers wav folders when both exist."""
        root = Path(root)
        if not root.is_dir():
            raise SourceError(
                f"dataset root {root} does not exist; pass a MUSDB18 root (or run "
                f"`msaug demo-data {root}` to make a demo dataset there)"
            )
        subset_dirs = [root / s for s in SUBSETS if (root / s).is_dir()]
        if not subset_dirs:
            found = sorted(p.name for p in root.iterdir())[:8]
            raise SourceError(
                f"{root} has no train/ or test/ folder (found {found}); expected "
                f"<root>/train/<track>/{{{','.join(STEM_NAMES)}}}.wav or "
                f"<root>/train/<track>{STEM_SUFFIX}"
            )
        chosen = _detect_form(subset_dirs) if form == "auto" else form
        if chosen is None:
            raise SourceError(
                f"{root} has train/ or test/ but no track folders or {STEM_SUFFIX} files in them; "
                "expected the MUSDB18 or MUSDB18-HQ layout"
            )
        tracks = []
        for subset_dir in subset_dirs:
            for entry in sorted(os.listdir(subset_dir)):
                path = subset_dir / entry
                if chosen == "wav" and path.is_dir():
                    tracks.append(_wav_track(path, subset_dir.name))
                elif chosen == "stem" and entry.endswith(STEM_SUFFIX):
                    tracks.append(_stem_track(path, subset_dir.name))
        if not tracks:
            raise SourceError(f"{root} holds no {chosen} tracks; check --source-format")
        return cls(root, chosen, tracks)

    def tracks(self, subset: str | None = None, split: str | None = None) -> list[Track]:
        """Tracks of a subset; `split` = 'train' or 'valid' applies musdb's validation split."""
        if split not in (None, "train", "valid"):
            raise SourceError(f"split must be train or valid, got {split!r}")
        valid = musdb_validation_tracks()
        selected = [t for t in self._tracks if subset is None or t.subset == subset]
        if split is not None:
            selected = [t for t in selected if (t.name in valid) == (split == "valid")]
        return selected

    def track(self, subset: str, name: str) -> Track:
        for track in self._tracks:
            if track.subset == subset and track.name == name:
                return track
        raise SourceError(f"track {subset}/{name} is not in {self.root}; was the root changed?")

    def check_sample_rate(self, sample_rate: int) -> None:
        wrong = [t for t in self._tracks if t.sample_rate != sample_rate]
        if wrong:
            raise SourceError(
                f"track {wrong[0].subset}/{wrong[0].name} is {wrong[0].sample_rate} Hz but "
                f"{sample_rate} Hz was asked for; pass --sr {wrong[0].sample_rate} or resample "
                "the sources"
            )


def read_segment(track: Track, stem: str, start: int, frames: int) -> np.ndarray:
    """Exactly `frames` frames of one stem from frame `start`, as float32 (channels, frames).

    Raises SourceError when the track is too short for the request, rather than padding.
    """
    if start < 0 or start + frames > track.num_frames:
        raise SourceError(
            f"track {track.subset}/{track.name} has {track.seconds:.2f} s; a segment of "
            f"{frames / track.sample_rate:.2f} s from {start / track.sample_rate:.2f} s does "
            "not fit: use shorter --seconds or longer tracks"
        )
    if track.form == "wav":
        try:
            data, _ = sf.read(
                str(track.stem_path(stem)),
                start=start,
                stop=start + frames,
                dtype="float32",
                always_2d=True,
            )
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise SourceError(f"{track.stem_path(stem)} cannot be read ({exc})") from exc
        audio = data.T
    else:
        audio = _read_stem_mp4(track, stem, start, frames)
    if audio.shape[1] != frames:
        raise SourceError(
            f"{track.stem_path(stem)} returned {audio.shape[1]} frames at {start}, expected "
            f"{frames}; the file is truncated or corrupt"
        )
    return np.ascontiguousarray(audio)


def _read_stem_mp4(track: Track, stem: str, start: int, frames: int) -> np.ndarray:
    import stempeg

    try:
        data, _ = stempeg.read_stems(
            str(track.path),
            start=start / track.sample_rate,
            duration=frames / track.sample_rate,
            stem_id=STEM_IDS[stem],
            dtype=np.float32,
            sample_rate=track.sample_rate,
        )
    except Exception as exc:  # ffmpeg failures surface as several exception types
        raise SourceError(f"{track.path} cannot be decoded ({exc}); replace the file") from exc
    audio = np.asarray(data, dtype=np.float32).T
    # ffmpeg's seek may return up to an AAC frame more or fewer than asked: trim or pad that
    # much; a larger shortfall is a truncated file and is left for the caller's length check.
    missing = frames - audio.shape[1]
    if 0 < missing <= _AAC_FRAME:
        audio = np.pad(audio, ((0, 0), (0, missing)))
    return audio[:, :frames]
