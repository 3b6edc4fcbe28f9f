"""`msaug rerender`: rebuild one item from its manifest rows alone and compare checksums.

If the manifest's provenance is complete (source track, offset, every effect with its values,
gain, render settings), rendering those rows again must give the same bytes. This is the proof,
and also how a user recovers a damaged file without re-running the whole render.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from augment.config import Suitability
from augment.identity import library_versions, settings_from_identity
from augment.item import render_item
from augment.plan import replay_item
from augment.settings import check_settings
from augment.sources import SourceRoot
from augment.validation import write_valid_song
from manifests import Dataset, ManifestError
from manifests.card import provenance


@dataclass(frozen=True)
class RerenderReport:
    item_id: str
    matches: dict[str, bool]
    drift: tuple[str, ...] = ()
    """Builds that differ from the render's (`pedalboard: was 0.9.16, now 0.9.17`): a reason
    for a mismatch that is not a damaged file."""

    @property
    def ok(self) -> bool:
        return all(self.matches.values())


def rerender_item(
    dataset_root: str | Path, item_id: str, source_root: str | Path | None = None
) -> RerenderReport:
    """Render `item_id` again from its rows into a scratch folder and compare checksums."""
    dataset = Dataset.open(dataset_root)
    identity = dataset.header.get("identity", {})
    if "seconds" not in identity.get("settings", identity):
        raise ManifestError(f"{dataset.root} was not written by msaug render; nothing to rerender")
    made = provenance(dataset.header)
    root = source_root or identity.get("root") or made.get("source_root")
    settings = settings_from_identity(identity, str(root))
    check_settings(settings)  # format and subtype reach file names: only the allowed values
    sources = SourceRoot.open(settings.root, settings.source_form)  # type: ignore[arg-type]
    drift = library_drift(identity.get("libraries", {}), library_versions(settings, sources.form))
    item, stem_rows = dataset.item(item_id)
    if item.role == "valid":  # a validation song: its files are the source's, rebuilt as placed
        track = sources.track(stem_rows[dataset.stem_names[0]].source_subset, item.item_id)
        with tempfile.TemporaryDirectory() as scratch:
            new_item, new_stems = write_valid_song(
                track, Path(scratch), settings, Suitability(**identity["config"]["suitability"])
            )
        got = {"mixture": new_item.checksum, **{r.stem: r.checksum for r in new_stems}}
        expected = {"mixture": item.checksum, **{s: r.checksum for s, r in stem_rows.items()}}
        return RerenderReport(item_id, {k: got[k] == expected[k] for k in expected}, drift)
    suitability = Suitability(**identity["config"]["suitability"])
    scheme = int(identity.get("draw_scheme", 1))
    ordered = {stem: stem_rows[stem] for stem in dataset.stem_names}
    plan, audio = replay_item(item, ordered, sources, scheme, settings.sample_rate)
    with tempfile.TemporaryDirectory() as scratch:
        new_item, new_stems = render_item(plan, audio, settings, suitability, Path(scratch))
    expected = {"mixture": item.checksum, **{s: stem_rows[s].checksum for s in dataset.stem_names}}
    got = {"mixture": new_item.checksum, **{r.stem: r.checksum for r in new_stems}}
    matches = {name: got[name] == expected[name] for name in expected}
    return RerenderReport(item_id, matches, drift)


def library_drift(recorded: dict[str, str], current: dict[str, str]) -> tuple[str, ...]:
    """The byte-determining builds that differ between a render and this machine."""
    return tuple(
        f"{name}: was {recorded[name]}, now {current.get(name, 'missing')}"
        for name in sorted(recorded)
        if recorded[name] != current.get(name)
    )
