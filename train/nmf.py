"""The unsupervised floor of every SDR table: NMF + k-means with an oracle assignment.

The source project's third system, as its report (section 3.3) describes it, per song: the
mixture's magnitude STFT (window 2048, hop 512) is factorised once, V ~ W H, with K = 8
components (Kullback-Leibler divergence, multiplicative updates, random init); "the K
components (rows of H)" are clustered into 4 groups by k-means; each cluster's magnitude
W_c H_c (the sum of its components) is given the mixture's phase and inverted; and each
cluster is assigned to a source "using a greedy matching strategy based on comparing the
estimated signal from each cluster to the ground-truth sources". That last step sees the
references: the result is a diagnostic floor (what a blind decomposition can reach at best),
not a separator.

Choices made here, each for a reason:
- **Once per song.** The factorisation, the clustering and the assignment are made once on
  the whole song, as the source did (its cluster numbers mean nothing from one fit to the
  next, so the assignment cannot outlive the fit). Memory: a song of n samples has
  T = 1 + n // hop frames per channel; the stacked stereo magnitude is 1025 x 2T float32,
  M = 8.2 kB x T (170 MB for a 4-minute song at 44.1 kHz, 420 MB for 10 minutes), and the
  multiplicative updates hold about four temporaries of that size. Measured on a 4-minute
  stereo song at 44.1 kHz: the peak grew by 1.2 GB over the loaded mixture and stems (0.4 GB),
  0.7 GB of it the four cluster signals and the four estimates; memory grows linearly with
  the length (about 3 GB for 10 minutes). One update pass took 0.5 s on one core for those
  4 minutes; 200 passes at most.
- **Per-chunk variant** (`per_chunk`, not the source's system). The song is cut into
  near-equal chunks of at most `chunk_seconds` and each chunk is factorised, clustered and
  assigned on its own: bounded memory, but the oracle chooses again in every chunk (a 4-minute
  song at 30 s gets 8 choices) and each fit sees less of the song, so its numbers are not the
  source's system's, in either direction.
- **Clustering axis.** `cluster_on="activations"` (the default, the report) clusters the rows
  of H: components that are active at the same times land together. `"bases"` clusters the
  columns of W (spectral shapes), which is what the source's published script does
  (src/models/NMF/NMF.py of its repository; docs/baselines.md). Each row (or column) is
  scaled to unit L2 norm first: NMF fixes W H, not how the scale is split between W and H, so
  raw norms are arbitrary; k-means then groups shapes (of activation over time, or of
  spectrum), not loudness.
- **Stereo.** The source works in mono; here the two channels' magnitudes are concatenated
  along time, so one set of bases serves both channels while each channel keeps its own
  activations (a row of H is then the component's left activations followed by its right).
- **Reconstruction.** Cluster c's magnitude is W_c H_c itself (not a mask of the mixture),
  with the mixture's phase, as the report says. The NMF sees the unnormalised STFT magnitude,
  as librosa's (the source's) STFT gives it.
- **Greedy assignment.** The report does not say in which order the greedy matching goes, nor
  by which score; the source's script takes the targets in the order vocals, drums, bass, other
  and gives each the remaining cluster with the highest whole-signal SDR against its reference
  (ties: the lower cluster number). That is the rule here, with the SDR over both channels.
  No cluster goes to two targets; with fewer clusters than targets the targets left over get
  silence, with more the clusters left over are dropped.
- **Seeds.** Fit k (the song, or chunk k) draws from SeedSequence([seed, k]) for both the NMF
  init and k-means, so the same seed gives the same numbers, and a song no longer than one
  chunk gives the same numbers in either mode.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from manifests import STEM_NAMES
from train.errors import TrainError
from train.evaluate import evaluate_tracks
from train.models import spectral
from train.sdr import whole_sdr
from train.validation import open_musdb

EPS = 1e-10
CLUSTER_AXES = ("activations", "bases")
"""What k-means groups: rows of H (the report) or columns of W (the source's script)."""


@dataclass(frozen=True)
class NMFConfig:
    """The baseline's settings; the defaults are the source project's (STFT as BSRNN's)."""

    components: int = 8
    clusters: int = 4
    seed: int = 0
    chunk_seconds: float = 30.0
    """Chunk length of the per-chunk variant; unused unless `per_chunk`."""
    per_chunk: bool = False
    """Factorise, cluster and assign per chunk (not the source's system: once per song)."""
    cluster_on: str = "activations"
    """"activations": k-means of the rows of H (the report); "bases": of the columns of W."""
    n_fft: int = 2048
    hop: int = 512
    max_iter: int = 200
    """Multiplicative-update iterations per fit (scikit-learn's default); tol stops earlier."""
    kmeans_init: int = 10
    """k-means restarts; the best of them is kept."""

    def __post_init__(self) -> None:
        if self.components < 1:
            raise TrainError(f"--components must be at least 1, got {self.components}")
        if not 1 <= self.clusters <= self.components:
            raise TrainError(
                f"--clusters must be between 1 and --components ({self.components}), "
                f"got {self.clusters}"
            )
        if not self.chunk_seconds > 0:
            raise TrainError(f"--chunk-seconds must be positive, got {self.chunk_seconds}")
        if self.cluster_on not in CLUSTER_AXES:
            raise TrainError(
                f"--cluster-on must be one of {', '.join(CLUSTER_AXES)}, got {self.cluster_on!r}"
            )
        if not 0 < self.hop <= self.n_fft:
            raise TrainError(f"NMF hop must be in 1..n_fft ({self.n_fft}), got {self.hop}")

    def describe(self) -> str:
        axis = "rows of H" if self.cluster_on == "activations" else "columns of W"
        scope = f"per {self.chunk_seconds:g} s chunk" if self.per_chunk else "once per song"
        return (
            f"{self.components} components, KL, k-means of the {axis} into {self.clusters} "
            f"clusters, greedy assignment {scope}, seed {self.seed}"
        )


@dataclass(frozen=True)
class Chunk:
    """One fit (the whole song, or a chunk): its sample range and each target's cluster.

    `clusters[t]` is the cluster given to target t, -1 for none.
    """

    start: int
    stop: int
    clusters: tuple[int, ...]


def chunk_bounds(length: int, frames: int) -> list[tuple[int, int]]:
    """Near-equal pieces of at most `frames` samples covering `length` (no short tail chunk)."""
    count = max(1, -(-length // frames))
    edges = np.linspace(0, length, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def stft(audio: np.ndarray, n_fft: int, hop: int) -> torch.Tensor:
    """(channels, time) -> complex (channels, bins, frames); zero padding works at any length."""
    samples = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return spectral.stft(samples, n_fft, hop, torch.hann_window(n_fft), pad_mode="constant")


def istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> np.ndarray:
    return spectral.istft(spec, n_fft, hop, torch.hann_window(n_fft), length).numpy()


def cluster_components(features: np.ndarray, clusters: int, n_init: int, seed: int) -> np.ndarray:
    """(components, dims) -> each component's k-means cluster, on unit-norm rows."""
    shapes = features / (np.linalg.norm(features, axis=1, keepdims=True) + EPS)
    kmeans = KMeans(clusters, n_init=n_init, random_state=seed)
    with warnings.catch_warnings():
        # Fewer distinct rows than clusters (e.g. silent components) is a result, not an error.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return kmeans.fit_predict(shapes)


def factorise(
    magnitude: np.ndarray, config: NMFConfig, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(channels, bins, frames) -> bases W (bins, K), activations H (channels, K, frames), labels.

    `labels[k]` is the k-means cluster of component k, by its activations (the row of H over
    both channels) or by its basis (column k of W), as `config.cluster_on` says.
    """
    channels, bins, frames = magnitude.shape
    stacked = magnitude.transpose(1, 0, 2).reshape(bins, channels * frames)
    nmf = NMF(
        n_components=config.components,
        solver="mu",
        beta_loss="kullback-leibler",
        init="random",
        max_iter=config.max_iter,
        random_state=seed,
    )
    # The products are thin (K = 8 columns): one BLAS thread was 3x faster than two on a busy
    # 2-core machine, where spinning threads wait for each other.
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)  # the iteration cap is a setting
        bases = nmf.fit_transform(stacked)
    del stacked
    rows = nmf.components_  # H: (K, channels * frames), a component's left then right frames
    features = rows if config.cluster_on == "activations" else bases.T
    labels = cluster_components(features, config.clusters, config.kmeans_init, seed)
    activations = rows.reshape(config.components, channels, frames).transpose(1, 0, 2)
    return bases, activations, labels


def cluster_estimates(mixture: np.ndarray, config: NMFConfig, seed: int) -> np.ndarray:
    """(channels, time) -> (clusters, channels, time): W_c H_c with the mixture phase, inverted.

    An empty cluster (possible only when k-means finds fewer distinct rows) is silent.
    """
    length = mixture.shape[-1]
    estimates = np.zeros((config.clusters, *mixture.shape), dtype=np.float32)
    spec = stft(mixture, config.n_fft, config.hop)
    # spectral.stft is orthonormal; the source's librosa STFT is not (x sqrt(n_fft)). KL NMF
    # is scale-equivariant except for its small floors, so give it librosa's scale.
    scale = math.sqrt(config.n_fft)
    magnitude = spec.abs().numpy()
    if not magnitude.any():  # NMF of silence has no bases; every cluster is silent too
        return estimates
    phase = spec.angle()
    del spec
    magnitude *= scale
    bases, activations, labels = factorise(magnitude, config, seed)
    del magnitude
    for cluster in range(config.clusters):
        keep = labels == cluster
        if not keep.any():
            continue
        part = torch.from_numpy(bases[:, keep] @ activations[:, keep] / scale)
        estimates[cluster] = istft(torch.polar(part, phase), config.n_fft, config.hop, length)
    return estimates


def greedy_assignment(scores: np.ndarray) -> tuple[int, ...]:
    """(targets, clusters) scores -> the cluster of each target, -1 when none is left.

    The targets in their order each take the best-scoring cluster that no earlier target took
    (ties: the lower cluster number). Not the best one-to-one map overall: an earlier target
    keeps its best cluster even when a later target needs it more.
    """
    free = list(range(scores.shape[1]))
    assignment = []
    for row in scores:
        best = max(free, key=lambda c: row[c]) if free else -1
        if best >= 0:
            free.remove(best)
        assignment.append(best)
    return tuple(int(c) for c in assignment)


def oracle_assignment(estimates: np.ndarray, references: np.ndarray) -> tuple[int, ...]:
    """Greedy, in target order, by whole-signal SDR against the references (-1: no cluster).

    Oracle: it reads the references, which no separator can.
    """
    scores = np.array([[whole_sdr(ref, est) for est in estimates] for ref in references])
    return greedy_assignment(scores)


def separate_nmf(
    mixture: np.ndarray, references: np.ndarray, rate: int, config: NMFConfig
) -> tuple[np.ndarray, list[Chunk]]:
    """(channels, time) and (targets, channels, time) -> estimates like the references, fits.

    One fit for the whole song, or one per chunk with `config.per_chunk`.
    """
    length = mixture.shape[-1]
    if config.per_chunk:
        bounds = chunk_bounds(length, max(1, round(config.chunk_seconds * rate)))
    else:
        bounds = [(0, length)]
    estimates = np.zeros(references.shape, dtype=np.float32)
    chunks = []
    for index, (start, stop) in enumerate(bounds):
        clusters = cluster_estimates(mixture[:, start:stop], config, _seed(config.seed, index))
        assignment = oracle_assignment(clusters, references[:, :, start:stop])
        for target, cluster in enumerate(assignment):
            if cluster >= 0:
                estimates[target, :, start:stop] = clusters[cluster]
        del clusters
        chunks.append(Chunk(start, stop, assignment))
    return estimates, chunks


def evaluate_nmf(root: Path, subset: str, out: Path, config: NMFConfig) -> str:
    """`mstrain eval --model nmf`: the same JSON and summary as a trained model's evaluation."""
    note = (
        f"NMF + k-means baseline ({config.describe()}) with an **oracle assignment**: the "
        f"targets in the order {', '.join(STEM_NAMES)} each take the remaining cluster that "
        "scores best against their reference. It reads the references, so it is a diagnostic "
        "floor, not a separator."
    )

    def estimate(mixture: np.ndarray, references: np.ndarray, rate: int) -> np.ndarray:
        return separate_nmf(mixture, references, rate, config)[0]

    return evaluate_tracks(open_musdb(root, subset), STEM_NAMES, estimate, subset, out, note)
