"""The Shape Explorer's directions (backend/directions.py): PCA of a model's stored training codes, their
descriptions from decoded shapes, and the stamped file beside the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.checkpoints import load_model, save_model
from backend.directions import (
    DIRECTIONS_FILE, MAX_NAME, compute_directions, describe, directions_of, principal_directions,
    read_directions, refresh_directions, write_directions,
)
from backend.limits import MAX_DIRECTIONS
from backend.prior import GaussianMixturePrior, posterior_mixture
from tests.addon.make_tiny_model import identity_sphere_model

# identity_sphere_model: output_i = relu(p_i + z_i) - relu(-p_i + z_{i+3}), so moving z_2 and z_5 together
# from 0 to 1 stretches the unit sphere's height from 2 to 4: "taller".
TALL = np.array([0, 0, 1, 0, 0, 1], dtype=np.float64) / np.sqrt(2)
WIDE = np.array([1, 0, 0, 1, 0, 0], dtype=np.float64) / np.sqrt(2)


def codes(count: int, seed: int, main: np.ndarray, spread: float = 0.3) -> np.ndarray:
    """Codes centred on 0.5 * main, spread mostly along `main` and a little along every latent axis."""
    rng = np.random.default_rng(seed)
    out: np.ndarray = 0.5 * main + rng.normal(0, spread, (count, 1)) * main + rng.normal(0, 0.02, (count, len(main)))
    return out


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    """The identity-sphere model with a VAE prior whose codes vary most along TALL, a 'wide' family of 20
    shapes varying along WIDE and a 'few' family of 8 (too few for its own directions)."""
    overall = codes(60, 0, TALL)
    wide, few = codes(20, 1, WIDE), codes(8, 2, TALL)
    logvar = np.full((60, 6), -8.0)
    folder = tmp_path / "sphere"
    save_model(folder, identity_sphere_model(), prior=posterior_mixture(overall, logvar), meta={"name": "sphere"},
               label_priors={"wide": posterior_mixture(wide, logvar[:20]), "few": posterior_mixture(few, logvar[:8])})
    return folder


def test_principal_directions_are_orthonormal_and_sorted_by_variance() -> None:
    rng = np.random.default_rng(3)
    stds = np.array([3.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.005])
    rotation = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    means = (rng.normal(size=(4000, 10)) * stds) @ rotation.T + 7.0
    prior = GaussianMixturePrior(weights=np.full(4000, 1 / 4000), means=means, chol=np.full((4000, 10), 0.1))
    mean, vectors, sigma = principal_directions(prior)
    assert vectors.shape == (MAX_DIRECTIONS, 10) and sigma.shape == (MAX_DIRECTIONS,)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(MAX_DIRECTIONS), atol=1e-9)
    assert np.all(np.diff(sigma) < 0)
    np.testing.assert_allclose(sigma[:4], stds[:4], rtol=0.08)  # the diagonal widths are not spread
    assert abs(abs(vectors[0] @ rotation[:, 0]) - 1) < 1e-3
    np.testing.assert_allclose(mean, means.mean(axis=0), atol=1e-9)


def test_a_full_covariance_component_counts_its_own_spread() -> None:
    chol = np.diag([2.0, 1.0, 0.5])[None]
    mean, vectors, sigma = principal_directions(GaussianMixturePrior(np.ones(1), np.zeros((1, 3)), chol))
    np.testing.assert_allclose(sigma, [2.0, 1.0, 0.5])
    np.testing.assert_allclose(np.abs(vectors), np.eye(3), atol=1e-12)


@pytest.mark.parametrize("scale,expected,flip", [
    ((1, 1, 1.5), "taller", False), ((1, 1, 0.6), "taller", True), ((1.5, 1, 1), "wider (x)", False),
    ((1, 1.5, 1), "longer (y)", False), ((1.5, 1.5, 1.5), "bigger", False), ((1.4, 1, 0.6), "taller, narrower", True),
    ((1, 0.6, 1.5), "longer, flatter", True), ((1.6, 1, 0.7), "wider, flatter", False),
    ((1, 0.7, 1.6), "taller", False),  # "taller, shorter y" is longer than a slider label may be
])
def test_descriptions_name_the_largest_change_of_the_bounding_box(scale: tuple[float, float, float], expected: str,
                                                                    flip: bool) -> None:
    low = np.random.default_rng(0).uniform(-1, 1, (500, 3))
    name, flipped = describe(low, low * np.array(scale))
    assert (name, flipped) == (expected, flip) and len(name) <= MAX_NAME


def test_a_move_without_a_size_change_is_described_by_its_shift_or_as_detail() -> None:
    low = np.random.default_rng(0).uniform(-1, 1, (500, 3))
    assert describe(low, low + [0, 0, 0.2]) == ("moves up", False)
    assert describe(low, low - [0.2, 0, 0]) == ("moves +x", True)
    assert describe(low, low + 0.001) == ("fine detail", False)


def test_a_tiny_models_directions_describe_what_the_decoder_does(model_dir: Path) -> None:
    lm = load_model(model_dir)
    directions = compute_directions(lm)
    overall = directions.overall
    assert abs(overall.vectors[0] @ TALL) > 0.99 and overall.descriptions[0].startswith("taller")
    assert overall.vectors[0] @ TALL > 0  # a positive move does what the description says
    assert len(set(overall.descriptions)) == len(overall.descriptions)
    assert all(len(d) <= MAX_NAME for d in overall.descriptions)
    assert overall.sigma[0] == pytest.approx(0.3, rel=0.3)
    assert sorted(directions.families) == ["wide"]  # 'few' has under MIN_FAMILY_SHAPES shapes
    wide = directions.families["wide"]
    assert abs(wide.vectors[0] @ WIDE) > 0.99 and wide.descriptions[0] == "wider (x)"
    assert directions.of("few") == (None, overall) and directions.of("wide") == ("wide", wide)
    taller = overall.move(overall.mean, [(0, 2.0)])
    np.testing.assert_allclose(taller - overall.mean, 2.0 * overall.sigma[0] * overall.vectors[0])


def test_directions_are_written_on_first_use_and_read_back(model_dir: Path) -> None:
    lm = load_model(model_dir)
    assert not (model_dir / DIRECTIONS_FILE).exists()
    first = directions_of(lm)
    assert (model_dir / DIRECTIONS_FILE).is_file()
    again = read_directions(model_dir, lm.weights_sha256, lm.config.latent_dim)
    assert again is not None and again.stamp == lm.weights_sha256
    for a, b in [(first.overall, again.overall), (first.families["wide"], again.families["wide"])]:
        np.testing.assert_array_equal(a.vectors, b.vectors)
        np.testing.assert_array_equal(a.sigma, b.sigma)
        assert a.descriptions == b.descriptions


def test_a_stale_stamp_or_a_broken_file_is_recomputed(model_dir: Path) -> None:
    lm = load_model(model_dir)
    good = compute_directions(lm)
    stale = type(good)(stamp="0" * 64, overall=type(good.overall)(
        mean=good.overall.mean, vectors=good.overall.vectors, sigma=good.overall.sigma * 10,
        descriptions=good.overall.descriptions))
    write_directions(model_dir, stale)
    assert read_directions(model_dir, lm.weights_sha256, 6) is None
    fresh = directions_of(lm)
    np.testing.assert_allclose(fresh.overall.sigma, good.overall.sigma)
    assert read_directions(model_dir, lm.weights_sha256, 6) is not None  # rewritten with the right stamp
    (model_dir / DIRECTIONS_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    assert read_directions(model_dir, lm.weights_sha256, 6) is None
    np.testing.assert_allclose(directions_of(lm).overall.sigma, good.overall.sigma)
    assert read_directions(model_dir, lm.weights_sha256, 7) is None  # another latent size: not these


def test_a_model_without_a_fitted_prior_has_directions(tmp_path: Path) -> None:
    save_model(tmp_path / "bare", identity_sphere_model(), meta={"name": "bare"})
    bare = refresh_directions(tmp_path / "bare")
    np.testing.assert_allclose(np.abs(bare.overall.vectors), np.eye(6), atol=1e-12)  # N(0, I)'s latent axes
    np.testing.assert_allclose(bare.overall.sigma, np.ones(6))
    logvar = np.full((20, 6), -8.0)
    save_model(tmp_path / "labels", identity_sphere_model(), meta={"name": "labels"},
               label_priors={"tall": posterior_mixture(codes(20, 4, TALL), logvar)})
    pooled = refresh_directions(tmp_path / "labels")
    assert abs(pooled.overall.vectors[0] @ TALL) > 0.99 and sorted(pooled.families) == ["tall"]
    assert (tmp_path / "labels" / DIRECTIONS_FILE).is_file()


def test_a_model_saved_where_its_directions_cannot_be_written_still_counts(model_dir: Path) -> None:
    blocker = model_dir / DIRECTIONS_FILE
    blocker.mkdir()  # the OS refuses to replace a folder with the file (root ignores read-only modes)
    assert len(refresh_directions(model_dir).overall.sigma) == 6
    assert blocker.is_dir() and not any(blocker.iterdir())
    blocker.rmdir()
    lm = load_model(model_dir)
    directions_of(lm)  # first use writes them
    assert read_directions(model_dir, lm.weights_sha256, 6) is not None
