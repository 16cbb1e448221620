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
ICOSPHERE_VERTICES = {level: 10 * 4**level + 2 for level in range(8)}


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
