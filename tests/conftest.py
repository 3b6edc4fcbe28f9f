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


@pytest.fixture(scope="session")
def small_render(source_root, tmp_path_factory) -> Path:
    """A real 4-item render of 1 s items at 22.05 kHz; tests that change it copy it first."""
    from augment.render import RenderSettings, render_dataset

    out = tmp_path_factory.mktemp("small-render") / "ds"
    settings = RenderSettings(root=str(source_root), seconds=1.0, sample_rate=SR, quality="fast")
    render_dataset(settings, out, n=4, jobs=1, progress=False)
    return out


@pytest.fixture
def one_thread():
    """One intra-op torch thread: tiny tensors gain nothing from a second one, and on a shared
    2-core machine the contention made a 3 s test take 26 s."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
