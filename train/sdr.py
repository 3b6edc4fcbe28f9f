"""The whole-signal SDR (uSDR, the MDX challenge's), in one place for `mstrain eval` and for
`--valid-sdr`, so the two report the same number for the same estimate. numpy only: training
imports it without museval."""

from __future__ import annotations

import numpy as np

EPS = 1e-8


def whole_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(sum s^2 / sum (s - s_hat)^2) over all channels and samples."""
    error = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10((np.sum(reference**2) + EPS) / (error + EPS)))
