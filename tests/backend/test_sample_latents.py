"""inference.sample_latents: the one place latents are drawn from a prior. Each shape has its own stream,
seeded from (seed, index) (issue 28: raising Count keeps the first shapes), drawn by the prior's own
sampler; and it is strict: what the model lacks is an error naming the input, never a silent fallback."""

from __future__ import annotations

import numpy as np
import pytest

from backend.errors import ConfigError
from backend.inference import sample_latents, shape_seed
from backend.prior import GaussianMixturePrior

DIM = 3


def _mixture(offset: float) -> GaussianMixturePrior:
    """Two diagonal components around `offset`, unequal weights, so the component draw matters."""
    return GaussianMixturePrior(weights=np.array([0.3, 0.7]), means=np.array([[offset] * DIM, [offset + 1.0] * DIM]),
                                chol=np.full((2, DIM), 0.5))


def per_shape(draw, count: int, seed: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What sample_latents promises: row i is draw(shape_seed(seed, i))."""
    return np.concatenate([draw(shape_seed(seed, i)) for i in range(count)])


def test_normal_latents_are_one_standard_normal_stream_per_shape() -> None:
    expected = per_shape(lambda s: np.random.default_rng(s).standard_normal((1, DIM)), 5, 7)
    np.testing.assert_array_equal(sample_latents(5, 7, DIM), expected)
    np.testing.assert_array_equal(sample_latents(5, 7, DIM, "normal", 0.5), 0.5 * expected)
    assert len({shape_seed(7, i) for i in range(64)} | {shape_seed(8, i) for i in range(64)}) == 128


def test_more_shapes_with_the_same_seed_keep_the_first_ones() -> None:
    prior, sword = _mixture(0.0), _mixture(10.0)
    for kind, extra in (("normal", {}), ("gmm", {"prior": prior}),
                        ("normal", {"label": "sword", "label_priors": {"sword": sword}})):
        four = sample_latents(4, 11, DIM, kind, 0.9, **extra)  # type: ignore[arg-type]
        eight = sample_latents(8, 11, DIM, kind, 0.9, **extra)  # type: ignore[arg-type]
        np.testing.assert_array_equal(eight[:4], four)
        assert not np.allclose(eight[4:], four), "the new shapes are new"


def test_mixture_latents_are_the_mixture_s_own_sampler() -> None:
    prior, sword = _mixture(0.0), _mixture(10.0)
    np.testing.assert_array_equal(sample_latents(6, 3, DIM, "gmm", 0.8, prior=prior),
                                  per_shape(lambda s: prior.sample(1, s, 0.8), 6, 3))
    np.testing.assert_array_equal(sample_latents(6, 3, DIM, "gmm", label="sword", prior=prior,
                                                 label_priors={"sword": sword}), per_shape(lambda s: sword.sample(1, s), 6, 3))


def test_auto_means_the_model_s_default() -> None:
    prior = _mixture(0.0)
    np.testing.assert_array_equal(sample_latents(4, 1, DIM, "auto", prior=prior, default="gmm"),
                                  sample_latents(4, 1, DIM, "gmm", prior=prior))
    np.testing.assert_array_equal(sample_latents(4, 1, DIM, "auto", prior=prior, default="normal"),
                                  sample_latents(4, 1, DIM, "normal"))


def test_a_label_draws_from_its_own_mixture_whatever_the_kind() -> None:
    sword = _mixture(10.0)
    np.testing.assert_array_equal(sample_latents(4, 2, DIM, "normal", label="sword", label_priors={"sword": sword}),
                                  per_shape(lambda s: sword.sample(1, s), 4, 2))


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
