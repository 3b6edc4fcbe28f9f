"""Rendering one item: each stem's chain, one anti-clipping scale, the five files, the rows.

`render_item` is shared by `msaug render` and `msaug rerender`, which is what makes a manifest
row enough to rebuild its files byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from augment.chain import apply_chain
from augment.config import Suitability
from augment.plan import ItemPlan
from augment.segments import levels
from augment.settings import RenderSettings
from manifests import ItemRecord, StemRecord
from manifests.files import quantize, write_audio
from manifests.schema import MIXTURE, audio_path

SUBSET = "train"
"""The folder rendered items go to (MUSDB18-HQ's `train/`); their role is `train`."""
CLIP_LIMIT = 0.98
"""Peak the mixture and each stem may reach; above it all stems share one scale down."""


def item_id(index: int) -> str:
    return f"{index:07d}"


def render_item(
    plan: ItemPlan,
    audio: dict[str, np.ndarray],
    settings: RenderSettings,
    suitability: Suitability,
    out: Path,
) -> tuple[ItemRecord, list[StemRecord]]:
    """Apply each stem's chain, scale once if the mix would clip, write the five files."""
    sr, frames, subtype = settings.sample_rate, settings.frames, settings.subtype
    rendered = {}
    for stem in plan.stems:
        y = apply_chain(
            audio[stem.stem], sr, stem.effects, frames, settings.stretch_backend, settings.quality
        )
        rendered[stem.stem] = y * np.float32(10 ** (stem.gain_db / 20))
    mix = sum(rendered.values())
    peak = max(float(np.abs(mix).max()), *(float(np.abs(y).max()) for y in rendered.values()))
    if not np.isfinite(peak):
        raise RuntimeError(f"item {plan.index} rendered non-finite samples; report this as a bug")
    scale = min(1.0, CLIP_LIMIT / peak) if peak > 0 else 1.0
    stems_q = {s: quantize(y * np.float32(scale), subtype) for s, y in rendered.items()}
    mixture = quantize(sum(stems_q.values()), subtype)
    iid = item_id(plan.index)
    stem_records = []
    for stem in plan.stems:
        rel = audio_path(SUBSET, iid, stem.stem, settings.format)
        info = write_audio(out / rel, stems_q[stem.stem], sr, subtype)
        measured = levels(stems_q[stem.stem], suitability)
        stem_records.append(
            StemRecord(
                item_id=iid,
                stem=stem.stem,
                source_track=stem.track.name,
                source_subset=stem.track.subset,
                offset_seconds=stem.start / sr,
                duration_seconds=audio[stem.stem].shape[1] / sr,
                gain_db=stem.gain_db,
                effects=[e.to_dict() for e in stem.effects],
                path=rel,
                checksum=info.checksum,
                bytes=info.bytes,
                rms_db=measured.rms_db,
                peak=measured.peak,
                activity=measured.activity,
            )
        )
    rel = audio_path(SUBSET, iid, MIXTURE, settings.format)
    info = write_audio(out / rel, mixture, sr, subtype)
    measured = levels(mixture, suitability)
    item = ItemRecord(
        item_id=iid,
        subset=SUBSET,
        role="train",
        mode=plan.mode,
        seconds=settings.seconds,
        sample_rate=sr,
        channels=int(mixture.shape[0]),
        num_frames=frames,
        run_seed=settings.seed,
        item_index=plan.index,
        item_seed=plan.item_seed,
        mixture_path=rel,
        checksum=info.checksum,
        bytes=info.bytes,
        common_scale=scale,
        mixture_rms_db=measured.rms_db,
        mixture_peak=measured.peak,
        attempts=plan.attempts,
    )
    return item, stem_records
