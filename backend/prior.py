"""Latent priors to sample from: the standard normal, and a Gaussian mixture fitted to training codes.

A VAE's aggregate posterior rarely fills N(0, I) exactly; fitting a full-covariance mixture to the
posterior means of the training set after training puts samples where the decoder has learnt shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import CheckpointError, ConfigError

PRIOR_KINDS = ("auto", "normal", "gmm")


@dataclass(frozen=True)
class GaussianMixturePrior:
    """Mixture weights (K,), means (K, D) and lower Cholesky factors of the covariances (K, D, D)."""

    weights: np.ndarray
    means: np.ndarray
    chol: np.ndarray

    @property
    def components(self) -> int:
        return len(self.weights)

    def sample(self, count: int, seed: int, temperature: float = 1.0) -> np.ndarray:
        """`count` latents (count, D); the same seed gives the same latents."""
        rng = np.random.default_rng(seed)
        comp = rng.choice(self.components, size=count, p=self.weights)
        eps = rng.standard_normal((count, self.means.shape[1]))
        return self.means[comp] + temperature * np.einsum("nij,nj->ni", self.chol[comp], eps)

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
        if m.ndim != 2 or w.shape != (m.shape[0],) or c.shape != (m.shape[0], m.shape[1], m.shape[1]):
            raise CheckpointError(f"{source}: prior tensors have inconsistent shapes "
                                  f"{w.shape}, {m.shape}, {c.shape}")
        return cls(weights=w / w.sum(), means=m, chol=c)


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


LABEL_PREFIX = "label_prior."
MIN_LABEL_CODES = 8


def fit_label_priors(codes: np.ndarray, labels: list[str], components: int = 4,
                     seed: int = 0) -> dict[str, GaussianMixturePrior]:
    """One mixture per label with enough codes, so a user can ask for 'a sword' rather than 'a shape'."""
    labels_arr = np.asarray(labels)
    out = {}
    for label in sorted(set(labels)):
        mask = labels_arr == label
        if mask.sum() >= MIN_LABEL_CODES:
            out[label] = fit_gmm(codes[mask], components, seed)
    return out
