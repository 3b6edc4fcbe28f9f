"""The validation split inside every rendered dataset: real songs, unaugmented.

Validating on held-out rendered items measures in-distribution fit: they come from the same
songs as the training items. So a render also writes a few real songs, never augmented and never
drawn from, under their own names where musdb looks (`train/<song>/`): musdb's `split='valid'`
then finds exactly them, `split='train'` exactly the rendered items, and mstrain picks
`best.pt` on them. Their rows have `role = valid`; their files are hard links to the sources
where the filesystem allows (free), else copies (or, for `.stem.mp4` sources, decoded wavs).

Which songs: musdb's own validation split (14 songs of MUSDB18's train) when the root has
them, else `--valid-tracks NAME ...`, or `--valid-count N` songs drawn by the run seed.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from augment.config import Suitability
from augment.errors import ConfigError
from augment.segments import levels
from augment.settings import RenderSettings
from augment.sources import SourceRoot, Track, read_segment
from manifests import DatasetWriter, ItemRecord, StemRecord
from manifests.checksum import file_checksum
from manifests.derive import place_file
from manifests.files import write_audio
from manifests.musdb_split import musdb_validation_tracks
from manifests.paths import check_name, check_real_folder
from manifests.schema import MIXTURE, STEM_NAMES, audio_path, item_dir

VALID_MODE = "unaugmented"


def choose_valid_tracks(
    sources: SourceRoot, settings: RenderSettings, names: tuple[str, ...], count: int | None
) -> tuple[str, ...]:
    """The validation songs of a render, by name; refused where they would also be drawn."""
    songs = {t.name for t in sources.tracks(settings.subset)}
    if (names or count) and settings.split != "train":
        raise ConfigError(
            f"--split {settings.split} would draw the validation songs too: with "
            "--valid-tracks or --valid-count use --split train"
        )
    if names:
        missing = sorted(set(names) - songs)
        if missing:
            raise ConfigError(
                f"--valid-tracks {missing[0]!r} is not a song of {sources.root}/{settings.subset}"
            )
        for name in names:
            check_name(name, "--valid-tracks")
        return tuple(sorted(names))
    if count:
        if not 0 < count < len(songs):
            raise ConfigError(
                f"--valid-count must be between 1 and {len(songs) - 1} (the songs of "
                f"{settings.subset} less one to train on), got {count}"
            )
        rng = np.random.default_rng([settings.seed, 0x7A11D])
        return tuple(sorted(rng.choice(sorted(songs), size=count, replace=False)))
    if settings.split != "train":
        return ()
    return tuple(sorted(songs & musdb_validation_tracks()))


def write_valid_song(
    track: Track, out: Path, settings: RenderSettings, rule: Suitability
) -> tuple[ItemRecord, list[StemRecord]]:
    """Place one song's five files under `out` and return its rows."""
    rows: dict[str, tuple[str, str, int, np.ndarray]] = {}
    for name in (*STEM_NAMES, MIXTURE):
        relative = audio_path("train", track.name, name, "wav")
        target = out / relative
        if track.form == "wav":
            place_file(track.stem_path(name), target, copy=False)
            audio = read_segment(track, name, 0, track.num_frames)
            info_bytes, checksum = target.stat().st_size, file_checksum(target)
        else:
            audio = read_segment(track, name, 0, track.num_frames)
            info = write_audio(target, audio, track.sample_rate, settings.subtype)
            info_bytes, checksum = info.bytes, info.checksum
        rows[name] = (relative, checksum, info_bytes, audio)
    stems = []
    for stem in STEM_NAMES:
        relative, checksum, size, audio = rows[stem]
        measured = levels(audio, rule)
        stems.append(
            StemRecord(
                item_id=track.name,
                stem=stem,
                source_track=track.name,
                source_subset=track.subset,
                offset_seconds=0.0,
                duration_seconds=track.num_frames / track.sample_rate,
                gain_db=0.0,
                effects=[],
                path=relative,
                checksum=checksum,
                bytes=size,
                rms_db=measured.rms_db,
                peak=measured.peak,
                activity=measured.activity,
            )
        )
    relative, checksum, size, audio = rows[MIXTURE]
    measured = levels(audio, rule)
    item = ItemRecord(
        item_id=track.name,
        subset="train",
        role="valid",
        mode=VALID_MODE,
        seconds=track.num_frames / track.sample_rate,
        sample_rate=track.sample_rate,
        channels=track.channels,
        num_frames=track.num_frames,
        run_seed=settings.seed,
        item_index=-1,
        item_seed=0,
        mixture_path=relative,
        checksum=checksum,
        bytes=size,
        common_scale=1.0,
        mixture_rms_db=measured.rms_db,
        mixture_peak=measured.peak,
        attempts=0,
    )
    return item, stems


def write_valid_part(
    writer: DatasetWriter,
    sources: SourceRoot,
    settings: RenderSettings,
    rule: Suitability,
    done: Collection[str],
) -> list[tuple[ItemRecord, list[StemRecord]]]:
    """The validation songs not yet in the manifest, as one part (they are quick: links);
    returns their rows."""
    todo = [name for name in settings.valid_tracks if name not in done]
    if not todo:
        return []
    for name in todo:  # its files are placed inside: never through a link
        check_real_folder(writer.root / item_dir("train", name), "a validation song's folder")
    rows = [
        write_valid_song(sources.track(settings.subset, name), writer.root, settings, rule)
        for name in todo
    ]
    writer.write_part("valid", [item for item, _ in rows], [s for _, stems in rows for s in stems])
    return rows
