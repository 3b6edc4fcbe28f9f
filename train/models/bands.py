"""Band-split layouts for BandSplitRNN: which STFT bins each sub-band holds, per target source.

The layouts are the per-target tables of the SE-BSRNN source (the unofficial BandSplitRNN
implementation), given in Hz so they stay meaningful at any sample rate and FFT size. A table is
a list of `(up_to_hz, width_hz)` steps: cut bands of `width_hz` from the previous limit up to
`up_to_hz`, then one last band from there to Nyquist.

Hz become bins by the bin's centre frequency: bin k (at k * sample_rate / n_fft Hz) belongs to
the band [low, high) that holds its centre, so a band edge at `high` Hz is the number of bins
whose centre lies below it, ceil(high * n_fft / sample_rate). At 44.1 kHz and n_fft 2048 this
gives the band counts the source reports: 41 (vocals, other), 30 (bass), 55 (drums).
"""

from __future__ import annotations

from itertools import pairwise

BandTable = tuple[tuple[int, int], ...]

_VOCALS: BandTable = ((1000, 100), (4000, 250), (8000, 500), (16000, 1000), (20000, 2000))
_BASS: BandTable = ((500, 50), (1000, 100), (4000, 500), (8000, 1000), (16000, 2000))
_DRUMS: BandTable = ((1000, 50), (2000, 100), (4000, 250), (8000, 500), (16000, 1000))

BAND_TABLES: dict[str, BandTable] = {
    "vocals": _VOCALS,
    "other": _VOCALS,
    "bass": _BASS,
    "drums": _DRUMS,
}


def band_table(source: str) -> BandTable:
    if source not in BAND_TABLES:
        raise ValueError(
            f"no band-split layout for source {source!r}; choose one of {sorted(BAND_TABLES)}"
        )
    return BAND_TABLES[source]


def band_edges(table: BandTable, sample_rate: int, n_fft: int) -> tuple[int, ...]:
    """Bin boundaries [0, e1, ..., n_fft // 2 + 1]; band k holds bins edges[k]:edges[k + 1].

    Edges at or above Nyquist, and edges that fall on the same bin as the previous one (coarse
    FFTs or low sample rates), are dropped, so every band holds at least one bin.
    """
    n_bins = n_fft // 2 + 1
    edges = [0]
    low_hz = 0
    for up_to_hz, width_hz in table:
        for high_hz in range(low_hz + width_hz, up_to_hz + 1, width_hz):
            edge = -(-high_hz * n_fft // sample_rate)  # ceil, in exact integers
            if edges[-1] < edge < n_bins:
                edges.append(edge)
        low_hz = up_to_hz
    edges.append(n_bins)
    return tuple(edges)


def band_widths(source: str, sample_rate: int, n_fft: int) -> tuple[int, ...]:
    """Bins per band for `source`'s layout; they sum to n_fft // 2 + 1."""
    edges = band_edges(band_table(source), sample_rate, n_fft)
    return tuple(high - low for low, high in pairwise(edges))
