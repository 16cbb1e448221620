"""Latent priors: GMM fitting on clustered codes, the VAE posterior mixture, seeded sampling, temperature,
mixture variances, tensor round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.errors import CheckpointError, ConfigError
from backend.prior import GaussianMixturePrior, fit_gmm, posterior_mixture, standard_normal

CENTRES = np.array([[-4.0, 0.0, 1.0], [4.0, 1.0, -1.0]])


def _codes(seed: int = 0, per: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([c + 0.2 * rng.standard_normal((per, 3)) for c in CENTRES])


def _sorted_means(prior: GaussianMixturePrior) -> np.ndarray:
    return prior.means[np.argsort(prior.means[:, 0])]


def test_fit_gmm_finds_the_clusters() -> None:
    prior = fit_gmm(_codes(), components=2, seed=0)
    assert prior.components == 2
    np.testing.assert_allclose(_sorted_means(prior), CENTRES, atol=0.15)
    np.testing.assert_allclose(prior.weights, [0.5, 0.5], atol=1e-6)
    # Cholesky factors are lower-triangular and reproduce a ~0.04 * I covariance.
    assert np.allclose(np.triu(prior.chol, k=1), 0.0)
    cov = prior.chol @ np.swapaxes(prior.chol, 1, 2)
    np.testing.assert_allclose(np.diagonal(cov, axis1=1, axis2=2), 0.04, atol=0.025)


def test_fit_gmm_limits_components_to_data() -> None:
    # Four codes per component at most: 9 codes allow only 2 components.
    prior = fit_gmm(_codes(per=5)[:9], components=8)
    assert prior.components == 2


@pytest.mark.parametrize("codes", [np.zeros((1, 4)), np.zeros(10), np.zeros((2, 3, 4))])
def test_fit_gmm_rejects_bad_codes(codes: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="latent codes"):
        fit_gmm(codes)


def test_samples_are_seeded() -> None:
    prior = fit_gmm(_codes(), components=2)
    a, b, c = prior.sample(50, seed=7), prior.sample(50, seed=7), prior.sample(50, seed=8)
    assert a.shape == (50, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # Samples land near the clusters, not between them.
    nearest = np.min(np.linalg.norm(a[:, None] - CENTRES[None], axis=-1), axis=1)
    assert nearest.max() < 1.5


def test_temperature_zero_gives_component_means_and_scales_spread() -> None:
    prior = fit_gmm(_codes(), components=2)
    z = prior.sample(30, seed=1, temperature=0.0)
    distances = np.min(np.linalg.norm(z[:, None] - prior.means[None], axis=-1), axis=1)
    np.testing.assert_allclose(distances, 0.0, atol=1e-12)
    hot, cold = prior.sample(400, seed=2, temperature=1.0), prior.sample(400, seed=2, temperature=0.5)
    comp_means = prior.sample(400, seed=2, temperature=0.0)
    np.testing.assert_allclose(cold - comp_means, 0.5 * (hot - comp_means), atol=1e-12)


def test_standard_normal_is_seeded_and_scaled() -> None:
    a = standard_normal(8, 5, seed=3)
    np.testing.assert_array_equal(a, standard_normal(8, 5, seed=3))
    assert not np.allclose(a, standard_normal(8, 5, seed=4))
    np.testing.assert_allclose(standard_normal(8, 5, seed=3, temperature=0.25), 0.25 * a)
    assert np.all(standard_normal(4, 5, seed=0, temperature=0.0) == 0)


def test_tensor_round_trip() -> None:
    prior = fit_gmm(_codes(), components=2)
    tensors = prior.to_tensors()
    assert set(tensors) == {"prior.weights", "prior.means", "prior.chol"}
    back = GaussianMixturePrior.from_tensors(tensors, "src")
    np.testing.assert_array_equal(back.means, prior.means)
    np.testing.assert_array_equal(back.chol, prior.chol)
    np.testing.assert_allclose(back.weights, prior.weights, rtol=1e-15)
    np.testing.assert_array_equal(back.sample(5, 0), prior.sample(5, 0))


@pytest.mark.parametrize("key,value", [
    ("prior.weights", torch.ones(3, dtype=torch.float64)),
    ("prior.means", torch.zeros(2, 4, dtype=torch.float64)),
    ("prior.means", torch.zeros(6, dtype=torch.float64)),
    ("prior.chol", torch.zeros(2, 3, 4, dtype=torch.float64)),
    ("prior.chol", torch.zeros(3, 3, 3, dtype=torch.float64)),
    ("prior.chol", torch.zeros(2, 4, dtype=torch.float64)),
])
def test_from_tensors_rejects_inconsistent_shapes(key: str, value: torch.Tensor) -> None:
    tensors = fit_gmm(_codes(), components=2).to_tensors()
    tensors[key] = value
    with pytest.raises(CheckpointError, match="inconsistent shapes") as err:
        GaussianMixturePrior.from_tensors(tensors, "/some/model.safetensors")
    assert "/some/model.safetensors" in str(err.value)


def test_from_tensors_names_a_missing_tensor() -> None:
    tensors = fit_gmm(_codes(), components=2).to_tensors()
    del tensors["prior.chol"]
    with pytest.raises(CheckpointError, match="prior.chol") as err:
        GaussianMixturePrior.from_tensors(tensors, "/m/model.safetensors")
    assert "/m/model.safetensors" in str(err.value)


def _posterior(n: int = 6, dim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    return 10.0 * rng.standard_normal((n, dim)), np.log(rng.uniform(0.01, 0.2, (n, dim)) ** 2)


def test_posterior_mixture_has_one_widened_component_per_code() -> None:
    mu, logvar = _posterior()
    prior = posterior_mixture(mu, logvar, spread=1.5)
    assert prior.diagonal and prior.components == len(mu)
    np.testing.assert_allclose(prior.weights, 1.0 / len(mu))
    np.testing.assert_array_equal(prior.means, mu)
    np.testing.assert_allclose(prior.chol, 1.5 * np.exp(0.5 * logvar), rtol=1e-12)


def test_posterior_mixture_samples_stay_within_their_component_width() -> None:
    mu, logvar = _posterior()
    prior = posterior_mixture(mu, logvar, spread=2.0)
    z = prior.sample(3000, seed=1)
    nearest = np.argmin(np.linalg.norm(z[:, None] - mu[None], axis=-1), axis=1)
    assert set(nearest) == set(range(len(mu)))
    # Standardised offsets from the nearest code are N(0, 1): the stored widths are the sampled ones.
    offsets = (z - mu[nearest]) / prior.chol[nearest]
    assert abs(offsets.std() - 1.0) < 0.05 and abs(offsets.mean()) < 0.05


def test_posterior_mixture_keeps_a_seeded_subset_above_the_cap() -> None:
    mu, logvar = _posterior(n=50)
    a, b = posterior_mixture(mu, logvar, max_components=20, seed=3), posterior_mixture(mu, logvar, max_components=20, seed=3)
    assert a.components == 20
    np.testing.assert_array_equal(a.means, b.means)
    assert all(any(np.array_equal(m, row) for row in mu) for m in a.means)


@pytest.mark.parametrize("mu,logvar,spread", [
    (np.zeros((4, 3)), np.zeros((4, 2)), 1.0),
    (np.zeros(3), np.zeros(3), 1.0),
    (np.zeros((0, 3)), np.zeros((0, 3)), 1.0),
    (np.zeros((4, 3)), np.zeros((4, 3)), 0.0),
    (np.zeros((4, 3)), np.zeros((4, 3)), float("nan")),
    (np.zeros((4, 3)), np.zeros((4, 3)), float("inf")),
])
def test_posterior_mixture_rejects_bad_input(mu: np.ndarray, logvar: np.ndarray, spread: float) -> None:
    with pytest.raises(ConfigError, match="posterior|spread"):
        posterior_mixture(mu, logvar, spread)


@pytest.mark.parametrize("prior", [fit_gmm(_codes(), components=2), posterior_mixture(*_posterior())],
                         ids=["full", "diagonal"])
def test_variance_matches_samples(prior: GaussianMixturePrior) -> None:
    z = prior.sample(40000, seed=0)
    np.testing.assert_allclose(prior.variance(), z.var(axis=0), rtol=0.05)


def test_component_variances_are_the_covariance_diagonals() -> None:
    _, logvar = _posterior()
    diag = posterior_mixture(np.zeros_like(logvar), logvar, spread=2.0)  # no spread between means
    np.testing.assert_allclose(diag.component_variances(), 4.0 * np.exp(logvar))
    np.testing.assert_allclose(diag.variance(), diag.component_variances().mean(axis=0))
    full = fit_gmm(_codes(), components=2)
    covs = np.einsum("kij,klj->kil", full.chol, full.chol)
    np.testing.assert_allclose(full.component_variances(), np.diagonal(covs, axis1=1, axis2=2))


def test_diagonal_prior_tensor_round_trip() -> None:
    prior = posterior_mixture(*_posterior())
    back = GaussianMixturePrior.from_tensors(prior.to_tensors(), "src")
    assert back.diagonal
    np.testing.assert_array_equal(back.chol, prior.chol)
    np.testing.assert_array_equal(back.sample(5, 0), prior.sample(5, 0))
