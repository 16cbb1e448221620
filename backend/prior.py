"""Latent priors to sample from: the standard normal, and Gaussian mixtures fitted to training codes.

A VAE's aggregate posterior rarely fills N(0, I) exactly. For a VAE the fitted prior is that aggregate
posterior itself: one diagonal Gaussian per training shape, straight from the encoder, widened a little
so samples are new shapes rather than near-copies. An autoencoder has no posterior widths, so it gets a
full-covariance mixture fitted by EM to its codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from .errors import CheckpointError, ConfigError
from .limits import PRIOR_KINDS



@dataclass(frozen=True)
class GaussianMixturePrior:
    """Mixture weights (K,), means (K, D) and covariance factors: lower Cholesky factors (K, D, D) for
    full covariances, or standard deviations (K, D) for diagonal ones."""

    weights: np.ndarray
    means: np.ndarray
    chol: np.ndarray

    @property
    def components(self) -> int:
        return len(self.weights)

    @property
    def diagonal(self) -> bool:
        return self.chol.ndim == 2

    def component_variances(self) -> np.ndarray:
        """Per-dimension variance of each component (K, D)."""
        if self.diagonal:
            return self.chol ** 2
        variances: np.ndarray = np.einsum("kij,kij->ki", self.chol, self.chol)  # einsum is typed Any
        return variances

    def variance(self) -> np.ndarray:
        """Per-dimension variance of the whole mixture (D,): within components plus between their means."""
        mean = self.weights @ self.means
        # numpy's stubs type arithmetic between untyped-dtype arrays as Any
        total: np.ndarray = self.weights @ (self.component_variances() + (self.means - mean) ** 2)
        return total

    def sample(self, count: int, seed: int, temperature: float = 1.0) -> np.ndarray:
        """`count` latents (count, D); the same seed gives the same latents."""
        rng = np.random.default_rng(seed)
        comp = rng.choice(self.components, size=count, p=self.weights)
        eps = rng.standard_normal((count, self.means.shape[1]))
        spread = self.chol[comp] * eps if self.diagonal else np.einsum("nij,nj->ni", self.chol[comp], eps)
        latents: np.ndarray = self.means[comp] + temperature * spread  # numpy's stubs: Any
        return latents

    def log_density(self, z: np.ndarray) -> np.ndarray:
        """log p(z) under the mixture for each row of `z` (n, D)."""
        from scipy.special import logsumexp

        z = np.asarray(z, dtype=np.float64)
        dim = self.means.shape[1]
        if self.diagonal:
            inv = 1.0 / self.chol ** 2  # (K, D); the squared distance expanded, so no (n, K, D) array is made
            dist = (z ** 2) @ inv.T - 2.0 * z @ (self.means * inv).T + (self.means ** 2 * inv).sum(axis=1)
            log_det = np.log(self.chol).sum(axis=1)
        else:
            diff = z[None, :, :] - self.means[:, None, :]  # (K, n, D)
            white = np.linalg.solve(self.chol, diff.transpose(0, 2, 1))  # (K, D, n)
            dist = (white ** 2).sum(axis=1).T
            log_det = np.log(np.abs(np.diagonal(self.chol, axis1=1, axis2=2))).sum(axis=1)
        parts = np.log(self.weights) - log_det - 0.5 * dim * np.log(2 * np.pi) - 0.5 * dist  # (n, K)
        density: np.ndarray = logsumexp(parts, axis=1)
        return density

    def to_tensors(self, prefix: str = "prior.") -> dict[str, torch.Tensor]:
        return {f"{prefix}weights": torch.from_numpy(self.weights.astype(np.float64)),
                f"{prefix}means": torch.from_numpy(self.means.astype(np.float64)),
                f"{prefix}chol": torch.from_numpy(self.chol.astype(np.float64))}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], source: str,
                     prefix: str = "prior.") -> "GaussianMixturePrior":
        try:
            w, m, c = (tensors[f"{prefix}{k}"].numpy() for k in ("weights", "means", "chol"))
        except KeyError as exc:
            raise CheckpointError(f"{source}: prior tensor {exc.args[0]!r} is missing") from None
        if m.ndim != 2 or w.shape != (m.shape[0],) or c.shape not in (m.shape, (*m.shape, m.shape[1])):
            raise CheckpointError(f"{source}: prior tensors have inconsistent shapes "
                                  f"{w.shape}, {m.shape}, {c.shape}")
        return cls(weights=w / w.sum(), means=m, chol=c)


def nearest_labels(z: np.ndarray, label_priors: Mapping[str, GaussianMixturePrior]) -> list[str | None]:
    """For each latent (n, D), the label whose own prior gives it the highest density (None without priors)."""
    if not label_priors:
        return [None] * len(z)
    names = sorted(label_priors)
    scores = np.stack([label_priors[name].log_density(z) for name in names], axis=1)
    return [names[i] for i in scores.argmax(axis=1)]


def standard_normal(count: int, dim: int, seed: int, temperature: float = 1.0) -> np.ndarray:
    """`count` latents from N(0, temperature^2 I); the same seed gives the same latents."""
    return temperature * np.random.default_rng(seed).standard_normal((count, dim))


def fit_gmm(codes: np.ndarray, components: int = 32, seed: int = 0) -> GaussianMixturePrior:
    """Fit a full-covariance Gaussian mixture to latent codes (N, D) with scikit-learn's EM."""
    from sklearn.mixture import GaussianMixture

    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) < 2:
        raise ConfigError(f"need at least 2 latent codes of shape (N, D) to fit a prior, got {codes.shape}")
    k = max(1, min(components, len(codes) // 4))
    gmm = GaussianMixture(n_components=k, covariance_type="full", reg_covar=1e-4, random_state=seed,
                          max_iter=200, n_init=2)
    gmm.fit(codes)
    chol = np.linalg.cholesky(gmm.covariances_)
    return GaussianMixturePrior(weights=gmm.weights_, means=gmm.means_, chol=chol)


def posterior_mixture(mu: np.ndarray, logvar: np.ndarray, spread: float = 1.5,
                      max_components: int = 4096, seed: int = 0) -> GaussianMixturePrior:
    """A VAE's aggregate posterior: an equal-weight mixture of N(mu_i, (spread * sigma_i)^2), one per code.

    The encoder's own widths say how far each code can move before the decoded shape changes, which a
    mixture fitted to the means alone cannot know. Measured on procedural chairs (docs/benchmarks.md),
    spread 1 samples near-copies of training shapes and 1.5 samples shapes as far from the training set
    as unseen ones. Above `max_components` codes a seeded random subset keeps the stored prior small.
    """
    mu, logvar = np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)
    if mu.ndim != 2 or len(mu) < 1 or logvar.shape != mu.shape:
        raise ConfigError(f"need posterior means and log-variances of one shape (N, D), got {mu.shape} "
                          f"and {logvar.shape}")
    if not 0 < spread < np.inf:
        raise ConfigError(f"prior spread must be a finite number > 0, got {spread!r}")
    if len(mu) > max_components:
        keep = np.sort(np.random.default_rng(seed).choice(len(mu), max_components, replace=False))
        mu, logvar = mu[keep], logvar[keep]
    return GaussianMixturePrior(weights=np.full(len(mu), 1.0 / len(mu)), means=mu,
                                chol=spread * np.exp(0.5 * logvar))


LABEL_PREFIX = "label_prior."
MIN_LABEL_CODES = 8


def fit_label_priors(codes: np.ndarray, labels: list[str], components: int = 4, seed: int = 0,
                     logvar: np.ndarray | None = None, spread: float = 1.5) -> dict[str, GaussianMixturePrior]:
    """One mixture per label with enough codes, so a user can ask for 'a sword' rather than 'a shape'.

    With `logvar` (a VAE) each is that label's part of the aggregate posterior, else an EM fit.
    """
    labels_arr = np.asarray(labels)
    out = {}
    for label in sorted(set(labels)):
        mask = labels_arr == label
        if mask.sum() >= MIN_LABEL_CODES:
            out[label] = fit_gmm(codes[mask], components, seed) if logvar is None else \
                posterior_mixture(codes[mask], logvar[mask], spread, seed=seed)
    return out
