"""Area-weighted surface sampling (backend/data/sampling.py)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.data.meshio import Mesh
from backend.data.sampling import sample_surface, sample_surface_normals
from backend.errors import ConfigError, MeshError


def two_triangles() -> Mesh:
    """Triangle A (area 1.5) in the plane z = 0 and triangle B (area 0.5) in the plane z = 5."""
    vertices = np.array(
        [[0, 0, 0], [3, 0, 0], [0, 1, 0], [0, 0, 5], [1, 0, 5], [0, 1, 5]], dtype=float
    )
    return Mesh(vertices=vertices, faces=np.array([[0, 1, 2], [3, 4, 5]]))


def test_shape_dtype_and_determinism() -> None:
    mesh = two_triangles()
    a = sample_surface(mesh, 500, np.random.default_rng(7))
    b = sample_surface(mesh, 500, np.random.default_rng(7))
    c = sample_surface(mesh, 500, np.random.default_rng(8))
    assert a.shape == (500, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_points_lie_on_their_triangles() -> None:
    points = sample_surface(two_triangles(), 4000, np.random.default_rng(0)).astype(np.float64)
    low = points[:, 2] == 0.0
    assert np.all(low | (points[:, 2] == 5.0))
    x, y = points[:, 0], points[:, 1]
    assert np.all(x >= 0) and np.all(y >= -1e-7)
    assert np.all(x[low] / 3.0 + y[low] <= 1.0 + 1e-6)
    assert np.all(x[~low] + y[~low] <= 1.0 + 1e-6)


def test_faces_are_picked_in_proportion_to_area() -> None:
    points = sample_surface(two_triangles(), 40_000, np.random.default_rng(1))
    on_big = int(np.sum(points[:, 2] == 0.0))
    ratio = on_big / (len(points) - on_big)
    assert ratio == pytest.approx(3.0, rel=0.05)


def test_points_are_uniform_within_a_triangle() -> None:
    """The centroid of uniform samples of a triangle is the triangle's centroid."""
    mesh = Mesh(vertices=np.array([[0.0, 0, 0], [3, 0, 0], [0, 1, 0]]), faces=np.array([[0, 1, 2]]))
    points = sample_surface(mesh, 40_000, np.random.default_rng(2))
    np.testing.assert_allclose(points.mean(axis=0), [1.0, 1.0 / 3.0, 0.0], atol=0.02)


def test_zero_area_faces_are_never_sampled() -> None:
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 10, 10], [20, 20, 20], [30, 30, 30]])
    faces = np.array([[3, 4, 5], [0, 1, 2], [3, 3, 4]])
    points = sample_surface(Mesh(vertices=vertices, faces=faces), 2000, np.random.default_rng(3))
    assert np.all(points[:, 2] == 0.0)
    assert points[:, :2].max() <= 1.0


def test_mesh_without_area_is_an_error() -> None:
    flat = Mesh(vertices=np.array([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]]), faces=np.array([[0, 1, 2]]))
    with pytest.raises(MeshError, match="no surface area"):
        sample_surface(flat, 10, np.random.default_rng(0))


@pytest.mark.parametrize("n", [0, -5, 2.5, True, "100"])
def test_bad_point_count(n: object) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        sample_surface(two_triangles(), n, np.random.default_rng(0))  # type: ignore[arg-type]


def test_rng_must_be_a_generator() -> None:
    with pytest.raises(ConfigError, match="numpy.random.Generator"):
        sample_surface(two_triangles(), 10, 42)  # type: ignore[arg-type]


def test_normals_come_with_the_same_points() -> None:
    mesh = two_triangles()
    tilted = Mesh(vertices=mesh.vertices * [1.0, 1.0, 1.0] + np.outer(mesh.vertices[:, 0], [0, 0, 1.0]),
                  faces=mesh.faces)  # both triangles sheared to the plane z - x = const
    points, normals = sample_surface_normals(tilted, 300, np.random.default_rng(3))
    np.testing.assert_array_equal(points, sample_surface(tilted, 300, np.random.default_rng(3)))
    assert normals.shape == (300, 3) and normals.dtype == np.float32
    np.testing.assert_allclose(np.abs(normals), np.tile([2 ** -0.5, 0.0, 2 ** -0.5], (300, 1)), atol=1e-6)
