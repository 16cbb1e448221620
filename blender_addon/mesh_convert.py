"""Blender meshes <-> numpy arrays with foreach_get/foreach_set, so no Python loop runs per vertex."""

from __future__ import annotations

import bpy
import numpy as np


class MeshConvertError(ValueError):
    """An object that cannot be turned into a triangle mesh; the message names the object."""


def object_triangles(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> tuple[np.ndarray, np.ndarray]:
    """World-space (V, 3) float64 vertices and (F, 3) int32 triangles of `obj` with modifiers applied."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        if mesh is None:
            raise MeshConvertError(f"Object '{obj.name}' has no mesh data")
        mesh.calc_loop_triangles()
        vertex_count = len(mesh.vertices)
        tri_count = len(mesh.loop_triangles)
        if vertex_count == 0 or tri_count == 0:
            raise MeshConvertError(f"Object '{obj.name}' has no faces to work with "
                                   f"({vertex_count} vertices, {tri_count} triangles)")
        co = np.empty(vertex_count * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
        tris = np.empty(tri_count * 3, dtype=np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
        matrix = np.array(evaluated.matrix_world, dtype=np.float64)
    finally:
        evaluated.to_mesh_clear()
    local = co.reshape(-1, 3).astype(np.float64)
    world = local @ matrix[:3, :3].T + matrix[:3, 3]
    return world, tris.reshape(-1, 3)


def arrays_to_mesh(name: str, vertices: np.ndarray, faces: np.ndarray) -> bpy.types.Mesh:
    """A new mesh datablock from (V, 3) vertices and (F, 3) triangles, smooth shaded."""
    verts = np.ascontiguousarray(vertices, dtype=np.float32).reshape(-1, 3)
    tris = np.ascontiguousarray(faces, dtype=np.int32).reshape(-1, 3)
    if len(tris) and (tris.min() < 0 or tris.max() >= len(verts)):
        raise MeshConvertError(f"Mesh '{name}': face indices outside 0..{len(verts) - 1}")
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", verts.ravel())
    mesh.loops.add(tris.size)
    mesh.loops.foreach_set("vertex_index", tris.ravel())
    mesh.polygons.add(len(tris))
    mesh.polygons.foreach_set("loop_start", np.arange(0, tris.size, 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    mesh.shade_smooth()
    return mesh


def bounds(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned (min, max) corners of a (V, 3) array."""
    pts = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    return pts.min(axis=0), pts.max(axis=0)

