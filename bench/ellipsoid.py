"""The issue-21 baseline: a least-squares ellipsoid fitted to a shape's surface samples, and its Chamfer.

A reconstruction is only worth something if it beats the plainest closed surface one can fit. The fit
is algebraic: least squares for the quadric a x² + b y² + c z² + 2d xy + 2e xz + 2f yz + 2g x + 2h y
+ 2i z = 1 over the samples, then centre and axes from its matrix. Where the best quadric is not an
ellipsoid (flat or saddle-like shapes: shields, planks), the moment ellipsoid stands in (centre at the
mean, axes along the principal directions, radii √3 · std, exact for a sphere's surface). An algebraic
fit minimises the quadric's residual, not the distance to the surface, and on a bowl or a chair it can
return an ellipsoid far larger than the shape; the baseline is therefore the better (lower Chamfer) of
the two ellipsoids, so a model is never flattered by a poor fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from backend.data.meshio import Mesh
from backend.data.sampling import sample_surface
from backend.metrics import chamfer

_SPHERE = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
_MIN_RADIUS = 1e-4


@dataclass(frozen=True)
class Ellipsoid:
    """Centre (3,), axes as columns of a rotation (3, 3), radii (3,); `algebraic` False for the moment fit."""

    centre: np.ndarray
    axes: np.ndarray
    radii: np.ndarray
    algebraic: bool


def fit_ellipsoid(points: np.ndarray) -> Ellipsoid:
    """The least-squares ellipsoid through (n, 3) surface samples (the moment ellipsoid if none fits)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 9:
        raise ValueError(f"need (n >= 9, 3) points to fit an ellipsoid, got shape {p.shape}")
    x, y, z = p.T
    design = np.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z, 2 * x, 2 * y, 2 * z], axis=1)
    coef, *_ = np.linalg.lstsq(design, np.ones(len(p)), rcond=None)
    a, b, c, d, e, f, g, h, i = coef
    quad = np.array([[a, d, e], [d, b, f], [e, f, c]])
    lin = np.array([g, h, i])
    try:
        centre = -np.linalg.solve(quad, lin)
    except np.linalg.LinAlgError:
        return _moment_ellipsoid(p)
    scale = 1.0 + centre @ quad @ centre
    if not scale > 0:
        return _moment_ellipsoid(p)
    eig, vec = np.linalg.eigh(quad / scale)
    if np.any(eig <= 0) or not np.all(np.isfinite(eig)):
        return _moment_ellipsoid(p)
    return Ellipsoid(centre=centre, axes=vec, radii=np.maximum(1.0 / np.sqrt(eig), _MIN_RADIUS), algebraic=True)


def moment_ellipsoid(points: np.ndarray) -> Ellipsoid:
    """The ellipsoid with the samples' mean and principal axes, radii √3 · std along each."""
    return _moment_ellipsoid(np.asarray(points, dtype=np.float64))


def _moment_ellipsoid(p: np.ndarray) -> Ellipsoid:
    centre = p.mean(axis=0)
    eig, vec = np.linalg.eigh(np.cov((p - centre).T))
    radii = np.maximum(np.sqrt(3.0 * np.clip(eig, 0.0, None)), _MIN_RADIUS)
    return Ellipsoid(centre=centre, axes=vec, radii=radii, algebraic=False)


def sample_ellipsoid(ell: Ellipsoid, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` points uniform by area on the ellipsoid's surface (a level-4 icosphere mapped onto it)."""
    vertices = (np.asarray(_SPHERE.vertices) * ell.radii) @ ell.axes.T + ell.centre
    return sample_surface(Mesh(vertices, np.asarray(_SPHERE.faces)), count, rng)


def best_ellipsoid(points: np.ndarray, rng: np.random.Generator) -> tuple[Ellipsoid, np.ndarray, float]:
    """The fitted or moment ellipsoid, whichever is nearer `points`: (ellipsoid, its samples, squared Chamfer)."""
    best: tuple[Ellipsoid, np.ndarray, float] | None = None
    for ell in (fit_ellipsoid(points), moment_ellipsoid(points)):
        cloud = sample_ellipsoid(ell, len(points), rng)
        cd = chamfer(cloud, points)
        if best is None or cd < best[2]:
            best = (ell, cloud, cd)
    assert best is not None
    return best


def ellipsoid_chamfer(points: np.ndarray, seed: int = 0) -> float:
    """Squared Chamfer between `points` and as many samples of the best ellipsoid fitted to them."""
    return best_ellipsoid(points, np.random.default_rng(seed))[2]
