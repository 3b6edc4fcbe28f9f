"""musdb's own train/valid split, shared by the render (`--split`) and the trainer.

musdb decides which of MUSDB18's training songs are validation songs (14 names in its
`configs/mus.yaml`); both stages must agree with it, and with each other, or a "held-out" song
leaks into training.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def musdb_validation_tracks() -> frozenset[str]:
    """The names of musdb's validation songs."""
    import musdb
    import yaml

    setup = Path(musdb.__path__[0]) / "configs" / "mus.yaml"
    return frozenset(yaml.safe_load(setup.read_text())["validation_tracks"])
