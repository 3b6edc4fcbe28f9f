"""Shared fixtures: tiny synthetic source roots and renders, built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sources_factory import make_source_root

SR = 22050


@pytest.fixture(scope="session")
def source_root(tmp_path_factory) -> Path:
    return make_source_root(
        tmp_path_factory.mktemp("sources"), tracks=3, seconds=8.0, sample_rate=SR
    )
