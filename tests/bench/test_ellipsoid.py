"""The ellipsoid baseline of bench/bench_base_v2.py: it recovers an ellipsoid it is given, and falls back
to the moment ellipsoid on a flat shape."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bench.ellipsoid import Ellipsoid, best_ellipsoid, ellipsoid_chamfer, fit_ellipsoid, moment_ellipsoid, sample_ellipsoid
from backend.metrics import chamfer


def _ellipsoid_points(count: int, seed: int) -> tuple[np.ndarray, Ellipsoid]:
    rot = Rotation.from_euler("xyz", [0.3, -0.7, 1.1]).as_matrix()
    ell = Ellipsoid(centre=np.array([0.1, -0.2, 0.05]), axes=rot, radii=np.array([0.9, 0.5, 0.3]), algebraic=True)
    return sample_ellipsoid(ell, count, np.random.default_rng(seed)), ell


def test_fit_recovers_a_rotated_offset_ellipsoid() -> None:
    points, truth = _ellipsoid_points(4000, 0)
    fit = fit_ellipsoid(points)
    assert fit.algebraic
    # The samples lie on a level-4 icosphere mapped onto the ellipsoid: its flat facets sit inside the
    # true surface by at most 1 - cos(edge angle / 2) ≈ 0.3 % of a radius, which bounds the error.
    assert np.allclose(np.sort(fit.radii), np.sort(truth.radii), rtol=0.01)
    assert np.allclose(fit.centre, truth.centre, atol=0.01)


def test_chamfer_of_an_ellipsoid_to_its_own_fit_is_sampling_noise() -> None:
    points, _ = _ellipsoid_points(2500, 1)
    other, _ = _ellipsoid_points(2500, 2)
    noise = chamfer(points, other)  # two independent samplings of the same surface
    assert ellipsoid_chamfer(points, seed=3) < 2 * noise


def test_flat_shape_falls_back_to_the_moment_ellipsoid() -> None:
    rng = np.random.default_rng(4)
    plank = np.column_stack([rng.uniform(-1, 1, 3000), rng.uniform(-0.3, 0.3, 3000), np.zeros(3000)])
    fit = fit_ellipsoid(plank)
    assert not fit.algebraic
    assert np.sort(fit.radii)[0] <= 1e-4 * 1.0001
    assert np.isfinite(ellipsoid_chamfer(plank))


def test_too_few_points_is_an_error_naming_the_shape() -> None:
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        fit_ellipsoid(np.zeros((5, 3)))


def test_baseline_takes_the_better_ellipsoid_where_the_quadric_fit_is_poor() -> None:
    rng = np.random.default_rng(5)
    # A bowl: the lower half of a sphere plus a flat rim ring; the quadric fit is not its nearest ellipsoid.
    u = rng.normal(size=(3000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    bowl = np.where(u[:, 2:] > 0, u * [1, 1, -1], u) * [1.0, 1.0, 0.6]
    ell, cloud, cd = best_ellipsoid(bowl, np.random.default_rng(6))
    both = [chamfer(sample_ellipsoid(e, len(bowl), np.random.default_rng(7)), bowl)
            for e in (fit_ellipsoid(bowl), moment_ellipsoid(bowl))]
    assert cloud.shape == bowl.shape
    # Each Chamfer is a random draw of the same surface's samples: allow the spread two draws show.
    spread = abs(chamfer(sample_ellipsoid(ell, len(bowl), np.random.default_rng(8)), bowl) - cd)
    assert cd <= min(both) + 2 * spread + 1e-12
