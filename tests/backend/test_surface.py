"""backend/surface.py: closing open, overlapping patches into one watertight, manifold, outward mesh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.cli import main
from backend.data.meshio import load_mesh
from backend.errors import ConfigError, MeshError
from backend.limits import MAX_FACE_BUDGET, MIN_FACE_BUDGET, SURFACE_CHOICES
from backend.surface import (
    MIN_GRID, THICKNESS_VOXELS, check_face_budget, check_surface, closed_surface, finish, is_closed_manifold,
    _decimate, _marching_cubes, resolve_surface,
)


def square(origin: tuple[float, float, float], u: tuple[float, float, float], v: tuple[float, float, float],
           side: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """An open grid patch origin + s u + t v (s, t in [0, 1]) of side x side vertices, as the decoder makes."""
    s, t = np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side), indexing="ij")
    verts = np.asarray(origin) + s.reshape(-1, 1) * np.asarray(u) + t.reshape(-1, 1) * np.asarray(v)
    idx = np.arange(side * side).reshape(side, side)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    return verts, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


def soup(*patches: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Patches as one mesh that shares no vertices between them."""
    verts, faces, offset = [], [], 0
    for v, f in patches:
        verts.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(verts), np.concatenate(faces)


def cube_patches(gap: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """The six faces of a unit cube as separate patches, each shrunk by `gap` so slits run along the edges,
    plus an overlapping patch lying on the top face (the base model's shapes overlap like that)."""
    lo, side = -0.5 + gap, 1.0 - 2 * gap
    faces = [((-0.5, lo, lo), (0, side, 0), (0, 0, side)), ((0.5, lo, lo), (0, 0, side), (0, side, 0)),
             ((lo, -0.5, lo), (0, 0, side), (side, 0, 0)), ((lo, 0.5, lo), (side, 0, 0), (0, 0, side)),
             ((lo, lo, -0.5), (side, 0, 0), (0, side, 0)), ((lo, lo, 0.5), (0, side, 0), (side, 0, 0)),
             ((-0.25, -0.25, 0.5), (0.5, 0, 0), (0, 0.5, 0))]
    return soup(*(square(*f) for f in faces))


def assert_clean_closed(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    """Watertight, consistently wound, outward (positive volume), no degenerate or repeated faces."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    assert is_closed_manifold(faces)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0
    assert np.all((faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2]))
    assert len(np.unique(np.sort(faces, axis=1), axis=0)) == len(faces)
    assert mesh.area_faces.min() > 0
    return mesh


def test_cube_of_open_patches_closes_into_one_solid() -> None:
    v, f = cube_patches()
    out = closed_surface(v, f, face_budget=4000)
    mesh = assert_clean_closed(out.vertices, out.faces)
    assert mesh.body_count == 1 and out.pieces_dropped == 0
    assert len(out.faces) <= 4000
    # filled, not a hollow shell: the volume is the cube's, give or take the offset of THICKNESS_VOXELS / 2
    # voxels on every side (a voxel is at most 1 / (MIN_GRID - 1) of the side) and what smoothing takes off
    # the corners
    voxel = 1.0 / (MIN_GRID - 1)
    assert 0.9 < mesh.volume < (1 + THICKNESS_VOXELS * voxel) ** 3


def test_single_open_sheet_becomes_a_thin_closed_slab() -> None:
    v, f = square((0, 0, 0), (1, 0, 0), (0, 1, 0))
    out = closed_surface(v, f, face_budget=MIN_FACE_BUDGET)
    mesh = assert_clean_closed(out.vertices, out.faces)
    assert mesh.body_count == 1 and len(out.faces) <= MIN_FACE_BUDGET
    lo, hi = mesh.bounds
    assert hi[2] - lo[2] < 0.1 < min(hi[0] - lo[0], hi[1] - lo[1])  # thin across, the sheet's size along


def test_crossing_sheets_are_one_piece() -> None:
    v, f = soup(square((-0.5, -0.5, 0), (1, 0, 0), (0, 1, 0)), square((0, -0.5, -0.5), (0, 1, 0), (0, 0, 1)))
    out = closed_surface(v, f, face_budget=3000)
    mesh = assert_clean_closed(out.vertices, out.faces)
    assert mesh.body_count == 1


def test_stray_speck_is_dropped_and_counted() -> None:
    v, f = soup(cube_patches(), square((3, 3, 3), (0.03, 0, 0), (0, 0.03, 0), side=3))
    out = closed_surface(v, f, face_budget=4000)
    mesh = assert_clean_closed(out.vertices, out.faces)
    assert mesh.body_count == 1 and out.pieces_dropped == 1
    assert mesh.bounds[1].max() < 1.0  # the speck at (3, 3, 3) is gone


def test_same_input_same_output() -> None:
    v, f = cube_patches()
    a, b = closed_surface(v, f, face_budget=2000), closed_surface(v, f, face_budget=2000)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)


def test_finish_keeps_patches_or_closes() -> None:
    v, f = cube_patches()
    kept = finish(v, f, "patches", 2000)
    assert kept.surface == "patches" and kept.vertices.shape == v.shape and kept.pieces_dropped == 0
    closed = finish(v, f, "closed", 2000)
    assert closed.surface == "closed" and is_closed_manifold(closed.faces)
    flat = finish(np.zeros((3, 3)), np.array([[0, 1, 2]]), "closed", 2000)  # nothing to close: kept, said so
    assert flat.surface == "patches" and len(flat.faces) == 1


def test_auto_closes_patch_models_only() -> None:
    assert resolve_surface("auto", "squares") == "closed"
    assert resolve_surface("auto", "sphere") == "patches"
    assert resolve_surface("closed", "sphere") == "closed"
    assert resolve_surface("patches", "squares") == "patches"
    assert set(SURFACE_CHOICES) == {"auto", "closed", "patches"}
    with pytest.raises(ConfigError, match="surface must be one of auto, closed, patches, got 'open'"):
        check_surface("open")


@pytest.mark.parametrize("bad", [0, -5, MIN_FACE_BUDGET - 1, MAX_FACE_BUDGET + 1, 10**12, 1.5, True, "2000", None])
def test_bad_face_budget_is_an_error_naming_it(bad: object) -> None:
    with pytest.raises(ConfigError, match=f"face_budget must be an integer between {MIN_FACE_BUDGET} and "
                                          f"{MAX_FACE_BUDGET}"):
        check_face_budget(bad)
    v, f = cube_patches()
    with pytest.raises(ConfigError, match="face_budget"):
        closed_surface(v, f, face_budget=bad)  # type: ignore[arg-type]


def test_unusable_mesh_is_an_error() -> None:
    with pytest.raises(MeshError, match="no valid triangles"):
        closed_surface(np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    with pytest.raises(MeshError, match="no area"):
        closed_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]))


# A 3 x 3 x 3 block of a building sample's field (in voxels, at its place in the grid) with one value 7.6e-7
# from zero: marching cubes put vertices of several grid edges on that corner, scikit-image's degenerate-face
# removal merged them, and an edge got four faces; libigl's decimation then returned no faces at all.
NEAR_ZERO_BLOCK = np.array([
    [[0.354, 0.427, 0.502], [-0.591, -0.520, -0.444], [-1.336, -1.467, -1.391]],
    [[0.052, 0.134, 0.265], [-0.907, 7.6e-7, -0.443], [-0.857, -0.938, -1.019]],
    [[-0.273, -0.211, -0.122], [-1.220, -1.187, -1.069], [-0.613, -0.694, -0.812]]], np.float32)


def test_a_field_value_next_to_zero_still_gives_a_closed_manifold_mesh() -> None:
    field = np.ones((19, 15, 43), np.float32)
    field[15:18, 11:14, 39:42] = NEAR_ZERO_BLOCK
    vertices, faces = _marching_cubes(field, np.zeros(3), 1.0)
    assert len(faces) and is_closed_manifold(faces)


def test_a_failed_decimation_is_a_mesh_error() -> None:
    # three triangles on one edge: not edge-manifold, which libigl refuses by returning no faces
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], np.float64)
    f = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    with pytest.raises(MeshError, match="decimation of its 3 faces to 2 failed"):
        _decimate(v, f, 2)


def test_the_bundled_base_closes_every_building_sample(tmp_path: Path) -> None:
    # `sample --label building --n 4 --seed 1` crashed on its third shape (the field block above)
    assert main(["sample", "--label", "building", "--n", "4", "--seed", "1", "--size", "unit",
                 "--out", str(tmp_path)]) == 0
    for i in range(4):
        mesh = load_mesh(tmp_path / f"sample_{i:03d}.obj")
        assert_clean_closed(mesh.vertices, mesh.faces)
