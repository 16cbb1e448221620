"""arrays_to_mesh in real bpy: the fast attribute route builds exactly the mesh the arrays describe
(valid without mesh.validate()), and every bad array is refused with an error naming the mesh,
before any datablock is made."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


def ico_arrays(bpy: Any, subdivisions: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (float64) and triangles (int64) of a Blender icosphere, like a decoded template mesh."""
    mesh = bpy.data.meshes.new("ico-source")
    import bmesh

    bm = bmesh.new()
    bmesh.ops.create_icosphere(bm, subdivisions=subdivisions, radius=1.0)
    bm.to_mesh(mesh)
    bm.free()
    mesh.calc_loop_triangles()
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
    mesh.loop_triangles.foreach_get("vertices", tris)
    bpy.data.meshes.remove(mesh)
    return co.reshape(-1, 3).astype(np.float64) * 1.7, tris.reshape(-1, 3).astype(np.int64)


def read(collection: Any, attr: str, width: int, dtype: Any) -> np.ndarray:
    out = np.empty(len(collection) * width, dtype=dtype)
    collection.foreach_get(attr, out)
    return out.reshape(-1, width) if width > 1 else out


def test_the_mesh_holds_the_arrays_and_is_valid(scene: Any, bpy_module: Any) -> None:
    from blender_addon.mesh_convert import arrays_to_mesh

    bpy = bpy_module
    vertices, faces = ico_arrays(bpy)
    mesh = arrays_to_mesh("ico", vertices, faces)
    assert (len(mesh.vertices), len(mesh.polygons), len(mesh.loops)) == (642, 1280, 3840)
    assert np.array_equal(read(mesh.vertices, "co", 3, np.float32), vertices.astype(np.float32))
    assert np.array_equal(read(mesh.loops, "vertex_index", 1, np.int32), faces.ravel())
    assert np.array_equal(read(mesh.polygons, "loop_start", 1, np.int32), np.arange(0, 3840, 3))
    assert set(read(mesh.polygons, "loop_total", 1, np.int32)) == {3}
    assert len(mesh.edges) == 1920, "a closed triangle mesh has 3F/2 edges"
    edges = np.sort(read(mesh.edges, "vertices", 2, np.int32), axis=1)
    corners = np.sort(np.stack([faces.ravel(), np.roll(faces, -1, axis=1).ravel()], axis=1), axis=1)
    assert {tuple(e) for e in edges} == {tuple(c) for c in corners}
    assert read(mesh.polygons, "use_smooth", 1, bool).all()
    assert mesh.validate(verbose=False, clean_customdata=False) is False, "nothing for validate to fix"


def test_vertices_without_faces_make_a_point_mesh(scene: Any, bpy_module: Any) -> None:
    from blender_addon.mesh_convert import arrays_to_mesh

    mesh = arrays_to_mesh("points", np.eye(3), np.zeros((0, 3), dtype=np.int32))
    assert (len(mesh.vertices), len(mesh.edges), len(mesh.polygons)) == (3, 0, 0)


TRIANGLE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@pytest.mark.parametrize("vertices, faces, message", [
    (TRIANGLE, [[0, 1, 3]], "Mesh 'bad': face indices outside 0..2 (found 0..3)"),
    (TRIANGLE, [[0, -1, 2]], "Mesh 'bad': face indices outside 0..2 (found -1..2)"),
    (TRIANGLE, [[0, 1, 2**40]], "Mesh 'bad': face indices outside 0..2"),
    (TRIANGLE, [[0, 1, 1]], "Mesh 'bad': 1 triangles use one vertex twice, first triangle 0 [0, 1, 1]"),
    (np.array([[0.0, 0.0, np.nan], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), [[0, 1, 2]],
     "Mesh 'bad': 1 vertices are not finite numbers (NaN, infinity or beyond float32), first vertex 0"),
    (np.array([[0.0, 0.0, 0.0], [np.inf, 0.0, 0.0], [0.0, 1e39, 0.0]]), [[0, 1, 2]],
     "Mesh 'bad': 2 vertices are not finite numbers (NaN, infinity or beyond float32), first vertex 1"),
    (TRIANGLE[:, :2], [[0, 1, 2]], "Mesh 'bad': vertices must be numbers of shape (V, 3), got float64 (3, 2)"),
    (TRIANGLE, [0, 1, 2], "Mesh 'bad': faces must be integer triangles of shape (F, 3), got int64 (3,)"),
    (TRIANGLE, [[0.0, 1.0, 2.0]], "Mesh 'bad': faces must be integer triangles of shape (F, 3), got float64 (1, 3)"),
])
def test_bad_arrays_are_refused_before_anything_is_made(scene: Any, bpy_module: Any, vertices: Any, faces: Any,
                                                       message: str) -> None:
    from blender_addon.mesh_convert import MeshConvertError, arrays_to_mesh

    before = len(bpy_module.data.meshes)
    with pytest.raises(MeshConvertError) as info:
        arrays_to_mesh("bad", vertices, np.array(faces))
    assert str(info.value).startswith(message)
    assert len(bpy_module.data.meshes) == before
