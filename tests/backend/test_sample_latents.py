"""inference.sample_latents: the one place latents are drawn from a prior. Its streams are the ones every
caller drew before (so seeded samples, sheets and benchmark figures stay put), and it is strict: what the
model lacks is an error naming the input, never a silent fallback to other shapes."""

from __future__ import annotations

import numpy as np
import pytest

from backend.errors import ConfigError
from backend.inference import sample_latents
from backend.prior import GaussianMixturePrior

DIM = 3


def _mixture(offset: float) -> GaussianMixturePrior:
    """Two diagonal components around `offset`, unequal weights, so the component draw matters."""
    return GaussianMixturePrior(weights=np.array([0.3, 0.7]), means=np.array([[offset] * DIM, [offset + 1.0] * DIM]),
                                chol=np.full((2, DIM), 0.5))


def test_normal_latents_are_the_plain_standard_normal_stream() -> None:
    # reports.sample_sheet and inference.choose_default_prior drew exactly this before; bit for bit.
    expected = np.random.default_rng(7).standard_normal((5, DIM))
    np.testing.assert_array_equal(sample_latents(5, 7, DIM), expected)
    np.testing.assert_array_equal(sample_latents(5, 7, DIM, "normal", 0.5), 0.5 * expected)


def test_mixture_latents_are_the_mixture_s_own_stream() -> None:
    prior, sword = _mixture(0.0), _mixture(10.0)
    np.testing.assert_array_equal(sample_latents(6, 3, DIM, "gmm", 0.8, prior=prior), prior.sample(6, 3, 0.8))
    np.testing.assert_array_equal(sample_latents(6, 3, DIM, "gmm", label="sword", prior=prior,
                                                 label_priors={"sword": sword}), sword.sample(6, 3))


def test_auto_means_the_model_s_default() -> None:
    prior = _mixture(0.0)
    np.testing.assert_array_equal(sample_latents(4, 1, DIM, "auto", prior=prior, default="gmm"), prior.sample(4, 1))
    np.testing.assert_array_equal(sample_latents(4, 1, DIM, "auto", prior=prior, default="normal"),
                                  sample_latents(4, 1, DIM, "normal"))


def test_a_label_draws_from_its_own_mixture_whatever_the_kind() -> None:
    sword = _mixture(10.0)
    np.testing.assert_array_equal(sample_latents(4, 2, DIM, "normal", label="sword", label_priors={"sword": sword}),
                                  sword.sample(4, 2))


def test_an_unknown_kind_is_named() -> None:
    with pytest.raises(ConfigError, match=r"prior must be one of \('auto', 'normal', 'gmm'\), got 'uniform'"):
        sample_latents(1, 0, DIM, "uniform")


def test_an_unknown_label_names_the_model_and_its_labels() -> None:
    priors = {"sword": _mixture(0.0), "mug": _mixture(5.0)}
    with pytest.raises(ConfigError, match=r"label 'chair' is not one of model 'tiny''s labels \(mug, sword\)"):
        sample_latents(1, 0, DIM, "gmm", label="chair", prior=_mixture(0.0), label_priors=priors, model_name="tiny")
    with pytest.raises(ConfigError, match=r"label 'chair' is not one of model 'tiny''s labels \(none\)"):
        sample_latents(1, 0, DIM, label="chair", model_name="tiny")


@pytest.mark.parametrize("kind,default", [("gmm", "normal"), ("auto", "gmm")])
def test_a_mixture_without_a_fitted_prior_is_refused(kind: str, default: str) -> None:
    with pytest.raises(ConfigError, match="model 'tiny' has no fitted prior; use prior 'normal'"):
        sample_latents(1, 0, DIM, kind, default=default, model_name="tiny")
