"""Uniform random points on a mesh surface: faces picked by area, positions by barycentric coordinates."""

from __future__ import annotations

import numpy as np

from backend.data.meshio import Mesh
from backend.errors import ConfigError, MeshError


def sample_surface(mesh: Mesh, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw n points uniformly over the surface area (zero-area faces are never chosen); (n, 3) float32."""
    return _sample(mesh, n, rng)[0]


def sample_surface_normals(mesh: Mesh, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The points sample_surface draws for the same rng, and the unit normal of each point's face (the
    winding's right-hand normal); both (n, 3) float32. For normal consistency, which ignores the sign."""
    points, normals = _sample(mesh, n, rng)
    return points, np.asarray(normals / np.linalg.norm(normals, axis=1, keepdims=True), dtype=np.float32)


def _sample(mesh: Mesh, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points (float32) and their faces' unnormalised normals (cross products, never zero)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"number of points to sample must be a positive integer, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    corners = mesh.vertices[mesh.faces]
    origin = corners[:, 0]
    edge_a = corners[:, 1] - origin
    edge_b = corners[:, 2] - origin
    cross = np.cross(edge_a, edge_b)
    areas = 0.5 * np.linalg.norm(cross, axis=1)
    cumulative = np.cumsum(areas)
    total = float(cumulative[-1]) if len(cumulative) else 0.0
    if not (total > 0.0 and np.isfinite(total)):
        raise MeshError("cannot sample points: the mesh has no surface area")
    # Inverse-CDF face choice: a zero-area face spans an empty interval of the cumulative sum.
    picks = np.searchsorted(cumulative, rng.random(n) * total, side="right")
    picks = np.minimum(picks, len(areas) - 1)
    uv = rng.random((n, 2))
    outside = uv.sum(axis=1) > 1.0
    uv[outside] = 1.0 - uv[outside]
    points = origin[picks] + uv[:, :1] * edge_a[picks] + uv[:, 1:] * edge_b[picks]
    return np.asarray(points, dtype=np.float32), cross[picks]
