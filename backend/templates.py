"""AtlasNet templates: the surfaces the decoder deforms (one sphere, or K square patches).

Training draws fresh random points on the template every step; inference uses a mesh of the template
at any resolution, whose connectivity becomes the output mesh's connectivity.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import trimesh

from .errors import ConfigError

TEMPLATE_KINDS = ("sphere", "squares")
# int ** int is typed Any (a negative power would give a float); these powers are ints
ICOSPHERE_VERTICES: dict[int, int] = {level: 10 * 4**level + 2 for level in range(8)}


def template_dim(kind: str) -> int:
    """Dimension of a template's points: 3 for the sphere, 2 for square patches."""
    if kind == "sphere":
        return 3
    if kind == "squares":
        return 2
    raise ConfigError(f"template kind must be one of {TEMPLATE_KINDS}, got {kind!r}")


def random_points(kind: str, patches: int, count: int, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform random template points, shaped (patches, count // patches, dim), for one training step."""
    per_patch = max(1, count // patches)
    if kind == "sphere":
        pts = torch.randn(patches, per_patch, 3, generator=generator)
        pts = pts / pts.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    else:
        template_dim(kind)
        pts = torch.rand(patches, per_patch, 2, generator=generator)
    return pts.to(device)


def icosphere_level(resolution: int) -> int:
    """The icosphere subdivision level whose vertex count is closest to `resolution`."""
    if resolution < 12:
        raise ConfigError(f"resolution must be at least 12 vertices, got {resolution}")
    return min(ICOSPHERE_VERTICES, key=lambda lvl: abs(math.log(ICOSPHERE_VERTICES[lvl] / resolution)))


@lru_cache(maxsize=16)
def _icosphere(level: int) -> tuple[np.ndarray, np.ndarray]:
    sphere = trimesh.creation.icosphere(subdivisions=level, radius=1.0)
    return np.asarray(sphere.vertices, dtype=np.float32), np.asarray(sphere.faces, dtype=np.int64)


@lru_cache(maxsize=16)
def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    u, v = np.meshgrid(np.linspace(0.0, 1.0, side), np.linspace(0.0, 1.0, side), indexing="ij")
    pts = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float32)
    idx = np.arange(side * side).reshape(side, side)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]).astype(np.int64)
    return pts, faces


def template_mesh(kind: str, patches: int, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Template mesh with about `resolution` vertices in all.

    Returns points shaped (patches, P, dim) and faces (F, 3) indexing the flattened (patches * P) points.
    """
    if kind == "sphere":
        pts, faces = _icosphere(icosphere_level(max(12, resolution // patches)))
        return pts[None].repeat(patches, axis=0), _offset_faces(faces, len(pts), patches)
    template_dim(kind)
    side = max(2, int(round(math.sqrt(resolution / patches))))
    pts, faces = _grid(side)
    return pts[None].repeat(patches, axis=0), _offset_faces(faces, len(pts), patches)


def mesh_vertex_count(kind: str, patches: int, resolution: int) -> int:
    """Vertices of `template_mesh(kind, patches, resolution)`, without building it."""
    if kind == "sphere":
        return patches * ICOSPHERE_VERTICES[icosphere_level(max(12, resolution // patches))]
    template_dim(kind)
    return patches * max(2, int(round(math.sqrt(resolution / patches)))) ** 2


def _offset_faces(faces: np.ndarray, per_patch: int, patches: int) -> np.ndarray:
    return np.concatenate([faces + k * per_patch for k in range(patches)])


def corner_uvs(kind: str, patches: int, resolution: int) -> np.ndarray:
    """Texture coordinates for every face corner of template_mesh(kind, patches, resolution), shaped
    (F * 3, 2) float32, in face order. Every output mesh shares the template's connectivity, so these
    UVs fit every mesh the model decodes at that resolution.

    Sphere: longitude/latitude, with the corners of faces that straddle the seam moved past 1 and a pole
    corner given its face's mean longitude, so no face is stretched across the map. Square patches: each
    patch's own (u, v) square, the patches tiled in a grid with a small margin."""
    pts, faces = template_mesh(kind, patches, resolution)
    flat = pts.reshape(-1, pts.shape[-1]).astype(np.float64)
    if kind == "sphere":
        x, y, z = flat[:, 0], flat[:, 1], flat[:, 2]
        u = 0.5 + np.arctan2(y, x) / (2.0 * math.pi)
        v = 0.5 + np.arcsin(np.clip(z, -1.0, 1.0)) / math.pi
        cu, cv = u[faces], v[faces]
        seam = cu.max(axis=1) - cu.min(axis=1) > 0.5
        cu[seam] = np.where(cu[seam] < 0.5, cu[seam] + 1.0, cu[seam])
        pole = np.hypot(x, y)[faces] < 1e-6
        for row, col in zip(*np.nonzero(pole)):
            others = [cu[row, k] for k in range(3) if not pole[row, k]]
            cu[row, col] = float(np.mean(others)) if others else 0.5
        return np.asarray(np.stack([cu, cv], axis=-1).reshape(-1, 2), dtype=np.float32)
    columns = max(1, math.ceil(math.sqrt(patches)))
    per_patch = pts.shape[1]
    patch = np.arange(len(flat)) // per_patch
    margin = 0.05
    u = (patch % columns + margin + flat[:, 0] * (1.0 - 2.0 * margin)) / columns
    v = (patch // columns + margin + flat[:, 1] * (1.0 - 2.0 * margin)) / columns
    return np.asarray(np.stack([u[faces], v[faces]], axis=-1).reshape(-1, 2), dtype=np.float32)
