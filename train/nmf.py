"""The unsupervised floor of every SDR table: NMF + k-means with an oracle assignment.

The source project's third system, per song: NMF of the mixture's magnitude STFT (8 components,
Kullback-Leibler divergence, multiplicative updates, random init), k-means on the spectral bases
into 4 clusters, each cluster resynthesised with the mixture phase, and each target given the
cluster that scores best against its reference. That last step sees the references: the result
is a diagnostic floor (what a blind decomposition can reach at best), not a separator.

Choices made here, each for a reason:
- **Chunks.** A song is cut into near-equal chunks of at most `chunk_seconds` (30 s by default)
  and each chunk is factorised on its own, so the NMF's working set is bounded by the chunk
  whatever the song's length: at 44.1 kHz, n_fft 2048, hop 512, a 30 s stereo chunk is a
  1025 x 5170 float32 matrix (21 MB), and the multiplicative updates hold a few of them.
  Chunks do not overlap; the cluster estimates of a chunk sum to its mixture, so the chunks'
  sum is the song's mixture again.
- **Stereo.** The two channels' magnitudes are concatenated along time, so one set of spectral
  bases serves both channels while each channel keeps its own activations (panning survives);
  each channel's masks come from its own activations.
- **Clustering.** Each basis (a column of W) is scaled to unit L2 norm before k-means, so the
  clusters group spectral shapes rather than loudness.
- **Masks.** A cluster's mask is its share of the model, W_c H_c / (W H), a soft (Wiener-like,
  magnitude) ratio; masks sum to one, and multiply the complex mixture STFT (mixture phase).
- **Assignment, per chunk.** Clusters are fitted per chunk, so their meaning changes from chunk
  to chunk; the assignment is made per chunk too: the one-to-one map of clusters to targets
  that maximises the sum of the targets' SDR over the chunk (Hungarian method on the targets x
  clusters score matrix). No cluster goes to two targets; with fewer clusters than targets
  the targets left over get silence, with more the clusters left over are dropped.
- **Seeds.** Chunk k of a song draws from SeedSequence([seed, k]) for both the NMF init and
  k-means, so the same seed gives the same numbers, and no chunk's draws depend on another's.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from manifests import STEM_NAMES
from train.errors import TrainError
from train.evaluate import evaluate_tracks, whole_sdr
from train.models import spectral
from train.validation import open_musdb

EPS = 1e-10


@dataclass(frozen=True)
class NMFConfig:
    """The baseline's settings; the defaults are the source project's (STFT as BSRNN's)."""

    components: int = 8
    clusters: int = 4
    seed: int = 0
    chunk_seconds: float = 30.0
    n_fft: int = 2048
    hop: int = 512
    max_iter: int = 200
    """Multiplicative-update iterations per chunk (scikit-learn's default); tol stops earlier."""
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
        if not 0 < self.hop <= self.n_fft:
            raise TrainError(f"NMF hop must be in 1..n_fft ({self.n_fft}), got {self.hop}")

    def describe(self) -> str:
        return (
            f"{self.components} components, KL, {self.clusters} clusters, seed {self.seed}, "
            f"{self.chunk_seconds:g} s chunks"
        )


@dataclass(frozen=True)
class Chunk:
    """One factorised chunk: its sample range and the cluster given to each target (-1: none)."""

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


def factorise(
    magnitude: np.ndarray, config: NMFConfig, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(channels, bins, frames) -> bases W (bins, K), activations H (channels, K, frames), labels.

    `labels[k]` is the k-means cluster of basis k.
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
    activations = nmf.components_.reshape(config.components, channels, frames).transpose(1, 0, 2)
    shapes = bases / (np.linalg.norm(bases, axis=0, keepdims=True) + EPS)
    kmeans = KMeans(config.clusters, n_init=config.kmeans_init, random_state=seed)
    labels = kmeans.fit_predict(shapes.T)
    return bases, activations, labels


def cluster_estimates(mixture: np.ndarray, config: NMFConfig, seed: int) -> np.ndarray:
    """(channels, time) -> (clusters, channels, time), each cluster resynthesised by its mask."""
    spec = stft(mixture, config.n_fft, config.hop)
    magnitude = spec.abs().numpy()
    length = mixture.shape[-1]
    if not magnitude.any():  # NMF of silence has no bases; every cluster is silent too
        return np.zeros((config.clusters, *mixture.shape), dtype=np.float32)
    bases, activations, labels = factorise(magnitude, config, seed)
    total = bases @ activations + EPS
    estimates = []
    for cluster in range(config.clusters):
        keep = labels == cluster
        part = bases[:, keep] @ activations[:, keep]
        mask = torch.from_numpy((part / total).astype(np.float32))
        estimates.append(istft(spec * mask, config.n_fft, config.hop, length))
    return np.stack(estimates)


def oracle_assignment(estimates: np.ndarray, references: np.ndarray) -> tuple[int, ...]:
    """The one-to-one map of clusters to targets with the highest summed SDR (-1: no cluster).

    Oracle: it reads the references, which no separator can.
    """
    scores = np.array([[whole_sdr(ref, est) for est in estimates] for ref in references])
    rows, cols = linear_sum_assignment(scores, maximize=True)
    assignment = np.full(len(references), -1)
    assignment[rows] = cols
    return tuple(int(c) for c in assignment)


def separate_nmf(
    mixture: np.ndarray, references: np.ndarray, rate: int, config: NMFConfig
) -> tuple[np.ndarray, list[Chunk]]:
    """(channels, time) and (targets, channels, time) -> estimates like the references, chunks."""
    estimates = np.zeros(references.shape, dtype=np.float32)
    chunks = []
    bounds = chunk_bounds(mixture.shape[-1], max(1, round(config.chunk_seconds * rate)))
    for index, (start, stop) in enumerate(bounds):
        clusters = cluster_estimates(mixture[:, start:stop], config, _seed(config.seed, index))
        assignment = oracle_assignment(clusters, references[:, :, start:stop])
        for target, cluster in enumerate(assignment):
            if cluster >= 0:
                estimates[target, :, start:stop] = clusters[cluster]
        chunks.append(Chunk(start, stop, assignment))
    return estimates, chunks


def evaluate_nmf(root: Path, subset: str, out: Path, config: NMFConfig) -> str:
    """`mstrain eval --model nmf`: the same JSON and summary as a trained model's evaluation."""
    note = (
        f"NMF + k-means baseline ({config.describe()}) with an **oracle assignment**: per "
        "chunk, each target gets the cluster that scores best against its reference (one "
        "cluster per target). It reads the references, so it is a diagnostic floor, not a "
        "separator."
    )

    def estimate(mixture: np.ndarray, references: np.ndarray, rate: int) -> np.ndarray:
        return separate_nmf(mixture, references, rate, config)[0]

    return evaluate_tracks(open_musdb(root, subset), STEM_NAMES, estimate, subset, out, note)
