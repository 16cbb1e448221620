"""Shared part builders for the procedural families: rigid transforms, lofted tubes and `Parts`,
which collects closed primitive meshes in world space and concatenates them into one Mesh."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import trimesh

from backend.data.meshio import Mesh

Vec = Sequence[float] | np.ndarray
Points = Sequence[Sequence[float]] | Sequence[np.ndarray] | np.ndarray


def translate(offset: Vec) -> np.ndarray:
    return np.asarray(trimesh.transformations.translation_matrix(np.asarray(offset, dtype=float)), dtype=np.float64)


def rotate(angle: float, axis: Vec, point: Vec | None = None) -> np.ndarray:
    return np.asarray(trimesh.transformations.rotation_matrix(angle, np.asarray(axis, dtype=float), point),
                      dtype=np.float64)


def scale(x: float, y: float, z: float) -> np.ndarray:
    return np.diag([x, y, z, 1.0])


def align_z(direction: Vec) -> np.ndarray:
    """Rotation taking +Z onto `direction`."""
    d = np.asarray(direction, dtype=float)
    return np.asarray(trimesh.geometry.align_vectors([0.0, 0.0, 1.0], d / np.linalg.norm(d)), dtype=np.float64)


def outward(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Flip a closed mesh whose faces were built inside out."""
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def loft(rings: np.ndarray) -> trimesh.Trimesh:
    """Closed solid through (m, k, 3) cross-section rings, capped at both ends."""
    m, k, _ = rings.shape
    i, j = np.meshgrid(np.arange(m - 1), np.arange(k), indexing="ij")
    a = (i * k + j).ravel()
    b = (i * k + (j + 1) % k).ravel()
    c = ((i + 1) * k + (j + 1) % k).ravel()
    d = ((i + 1) * k + j).ravel()
    first, last = np.arange(k), (m - 1) * k + np.arange(k)
    faces = np.concatenate(
        [
            np.stack([a, b, c], axis=1),
            np.stack([a, c, d], axis=1),
            np.stack([np.full(k, m * k), np.roll(first, -1), first], axis=1),
            np.stack([np.full(k, m * k + 1), last, np.roll(last, -1)], axis=1),
        ]
    )
    caps = np.stack([rings[0].mean(axis=0), rings[-1].mean(axis=0)])
    vertices = np.concatenate([rings.reshape(-1, 3), caps])
    return outward(trimesh.Trimesh(vertices=vertices, faces=faces, process=False))


def frames(path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation-minimising (normal, binormal) frames along a polyline."""
    tangents = np.gradient(path, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    normal = np.cross(tangents[0], np.eye(3)[np.argmin(np.abs(tangents[0]))])
    normals = np.empty_like(path)
    for i, t in enumerate(tangents):
        normal = normal - normal.dot(t) * t
        normal /= np.linalg.norm(normal)
        normals[i] = normal
    return normals, np.cross(tangents, normals)


class Parts:
    """Collects closed primitive meshes placed in world space and concatenates them into one Mesh."""

    def __init__(self) -> None:
        self._meshes: list[trimesh.Trimesh] = []

    def add(self, mesh: trimesh.Trimesh, transform: np.ndarray | None = None) -> None:
        if transform is not None:
            mesh.apply_transform(transform)
        self._meshes.append(mesh)

    def extend(self, other: Parts, transform: np.ndarray) -> None:
        for mesh in other._meshes:
            self.add(mesh, transform)

    def box(self, size: Vec, center: Vec, rotation: np.ndarray | None = None) -> None:
        placed = translate(center) if rotation is None else translate(center) @ rotation
        self.add(trimesh.creation.box(extents=np.asarray(size, dtype=float)), placed)

    def rod(self, start: Vec, end: Vec, radius: float, sections: int = 12) -> None:
        segment = np.array([start, end], dtype=float)
        self.add(trimesh.creation.cylinder(radius=radius, segment=segment, sections=sections))

    def disc(self, center: Vec, radius_x: float, radius_y: float, height: float, sections: int = 24) -> None:
        """Flat elliptic cylinder around +Z (table tops, bases, sword guards)."""
        mesh = trimesh.creation.cylinder(radius=1.0, height=height, sections=sections)
        self.add(mesh, translate(center) @ scale(radius_x, radius_y, 1.0))

    def capsule(self, start: Vec, end: Vec, radius: float) -> None:
        s, e = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
        mesh = trimesh.creation.capsule(height=float(np.linalg.norm(e - s)), radius=radius, count=[10, 8])
        self.add(mesh, translate((s + e) / 2) @ align_z(e - s))

    def ball(self, center: Vec, radius: float, stretch: Vec = (1.0, 1.0, 1.0), detail: int = 2) -> None:
        mesh = trimesh.creation.icosphere(subdivisions=detail, radius=radius)
        self.add(mesh, translate(center) @ scale(*stretch))

    def cone(self, base: Vec, tip: Vec, radius: float, sections: int = 16) -> None:
        b, t = np.asarray(base, dtype=float), np.asarray(tip, dtype=float)
        mesh = trimesh.creation.cone(radius=radius, height=float(np.linalg.norm(t - b)), sections=sections)
        self.add(mesh, translate(b) @ align_z(t - b))

    def torus(self, center: Vec, major: float, minor: float, normal: Vec = (0.0, 0.0, 1.0)) -> None:
        mesh = trimesh.creation.torus(major_radius=major, minor_radius=minor, major_sections=24,
                                      minor_sections=8)
        self.add(mesh, translate(center) @ align_z(normal))

    def hull(self, points: Points) -> None:
        self.add(trimesh.convex.convex_hull(np.asarray(points, dtype=float)))

    def lathe(self, profile: Points, base: Vec = (0.0, 0.0, 0.0), axis: Vec = (0.0, 0.0, 1.0)) -> None:
        """Solid of revolution of an (r, h) outline: either axis to axis, or a closed loop off the axis."""
        outline = np.asarray(profile, dtype=float)
        if outline[0, 0] > 0.0:
            outline = np.vstack([outline, outline[:1]])
        mesh = outward(trimesh.creation.revolve(outline, sections=24))
        self.add(mesh, translate(base) @ align_z(axis))

    def frustum(self, base: Vec, top: Vec, r_base: float, r_top: float) -> None:
        b, t = np.asarray(base, dtype=float), np.asarray(top, dtype=float)
        h = float(np.linalg.norm(t - b))
        self.lathe([(0, 0), (r_base, 0), (r_top, h), (0, h)], b, t - b)

    def tube(self, path: Points, radius: float, sections: int = 10) -> None:
        """A round tube along a polyline, capped at both ends (handles, bent poles)."""
        points = np.asarray(path, dtype=float)
        normals, binormals = frames(points)
        angle = np.linspace(0.0, 2 * np.pi, sections, endpoint=False)
        cos, sin = np.cos(angle)[None, :, None], np.sin(angle)[None, :, None]
        self.add(loft(points[:, None] + radius * (cos * normals[:, None] + sin * binormals[:, None])))

    def loft(self, rings: np.ndarray) -> None:
        self.add(loft(np.asarray(rings, dtype=float)))

    def mesh(self) -> Mesh:
        offsets = np.cumsum([0] + [len(m.vertices) for m in self._meshes[:-1]])
        vertices = np.concatenate([np.asarray(m.vertices) for m in self._meshes])
        faces = np.concatenate([np.asarray(m.faces) + o for m, o in zip(self._meshes, offsets)])
        return Mesh(vertices=vertices, faces=faces)
