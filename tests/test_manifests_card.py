"""`card`: README.md says what the folder holds, how it was made, how to check it, its terms."""

from __future__ import annotations

from factory import make_dataset

from manifests import Dataset
from manifests.card import CARD_FILE, write_card
from manifests.subset import write_selection
from manifests.verify import verify


def test_card_describes_the_dataset(tmp_path):
    root = make_dataset(tmp_path / "ds", n_items=4, seconds=1.0, sample_rate=8000)
    path = write_card(root)
    text = path.read_text()
    assert path == root / CARD_FILE
    assert "| train | coherent | 2 |" in text and "| all | all | 4 |" in text
    assert "tests.factory" in text and '"seed": 0' in text  # command and config
    mixtures = sum(p.stat().st_size for p in root.rglob("mixture.wav"))
    assert f"Mixtures: {mixtures / 1e3:.2f} kB ({mixtures:,} bytes)" in text
    assert f"{4 / 3600:.3f} hours" in text
    assert "xxh3_128" in text and "msaug verify" in text and "docs/manifest.md" in text
    assert "non-commercial research only" in text and "MUSDB18" in text
    assert verify(root).ok  # the card is not an unlisted file


def test_card_of_a_selection_traces_it_to_its_render(tmp_path):
    root = make_dataset(tmp_path / "ds", n_items=4)
    selection = Dataset.open(root).select("mode == 'incoherent'")
    write_selection(selection, tmp_path / "sub", command="msaug select ds --where ... --out sub")
    text = write_card(tmp_path / "sub").read_text()
    assert "msaug select ds --where ... --out sub" in text
    assert "`mode == 'incoherent'` is true" in text
    assert "### Parent" in text and "tests.factory" in text


def test_card_of_a_render_summarises_its_config_and_sources(small_render, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(small_render, root)
    text = write_card(root).read_text()
    header = Dataset.open(root).header
    assert "| reverb | 0.6 | damping 0.2..0.8, room_size 0.2..0.8 | all | all |" in text
    assert "Coherent items share: compressor, pitch_shift, reverb, time_stretch" in text
    assert "`train/Track 00`" in text and "Source tracks (3" in text
    assert f"--expect {header['digest']}" in text
    assert "## Use" in text and "Limitations" in text
    assert '"identity"' not in text and len(text.splitlines()) < 90  # no raw config dump
