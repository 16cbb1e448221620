"""Mesh clean-up and acceptance: weld vertices, drop stray far-away parts, refuse flat meshes, find duplicates.

The duplicate descriptor is computed on the surface scaled into the unit ball and is unchanged by mirroring
the shape in any axis plane (it histograms |x|, |y|, |z| about the bounding-box centre and the distance from
it), so a left part and its mirrored right part, or two scaled copies, count as one shape.
"""

from __future__ import annotations

import re

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

MIN_FACES = 12
FLAT_RATIO = 0.02        # smallest / largest principal extent below this: a flat mesh (a rug, a sign, a plane)
STRAY_DISTANCE = 4.0     # a part further than this many bulk radii from the rest is stray (drop_stray_parts)
STRAY_FACES = 0.25       # ... unless it holds at least this fraction of the faces
DESCRIPTOR_BINS = 16
# L1 distance between descriptors (4 histograms, each summing to 1) below which two meshes count as one
# shape. Measured on the corpus: pairs under 0.25 were variants of one model (breeds of one horse mesh,
# a shotgun and its pickup item, a model and its _low copy); the nearest distinct pairs (two kitchen
# tools, two cabinets) lie at 0.31 and above.
DUPLICATE_DISTANCE = 0.25

# Names that mark a mesh as not an object of its own, whatever the source.
NAME_REJECTS: tuple[tuple[str, str], ...] = (
    ("LOD copy", r"(^|[_\-. /])(lod\d*|lo|lowres|lowpoly|far|distant)([_\-. /]|\d|$)|[_\-]low\.\w+$"),
    ("animation frame", r"(^|[_\-. /])(frame\d+|anim\w*|pose\d+)([_\-. /]|$)"),
    ("effect", r"(^|[_\-. /])(effects?|fx|particles?|smoke|fire|flames?|explosion|clouds?|shadows?|"
               r"glow|halo|beam|muzzle|spark\w*|trail|splash|water|waterfall\w*)([_\-. /]|\d|$)"),
    ("debris", r"(^|[_\-. /])(debris|rubble|ruins?|wreck\w*|destroyed|destruction|damaged|broken|crash\w*|"
               r"gibs?)([_\-. /]|\d|$)"),
)
_NAME_REJECTS = tuple((why, re.compile(p, re.IGNORECASE)) for why, p in NAME_REJECTS)


def name_reject(path: str) -> str | None:
    """Why a mesh is not wanted judging by its path alone (LOD copy, animation frame, effect, debris), or None."""
    for why, pattern in _NAME_REJECTS:
        if pattern.search(path):
            return why
    return None


def weld(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices at the same position (files split them by UV or normal) and drop degenerate faces."""
    scale = float(np.ptp(vertices, axis=0).max()) or 1.0
    keys = np.round(vertices / (scale * 1e-6)).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[keep]
    used = np.unique(faces)
    remap = np.full(len(first), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return vertices[first][used], remap[faces]


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area of every triangle."""
    tri = vertices[faces]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def drop_stray_parts(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Remove connected parts far from the bulk of the faces (editor markers, stray helpers); returns the count.

    A part holding under STRAY_FACES of the faces is stray when it lies further than STRAY_DISTANCE bulk radii
    from the rest, by either of two measures: its nearest face centre from the median face centre, against
    the 90th percentile of all face centres' distances (small helpers, however many); or the gap between its
    bounding box and the box of all other parts, against half that box's diagonal. The second catches what
    the first cannot: the editor marker FlightGear's ICE3 car carries 400 m above it holds more than a
    tenth of the faces, so the percentile reached out to the marker itself and kept it (the car measured
    405.6 m tall). Faces, not area, are what count: that marker has seven times the car's surface area.
    """
    n = len(vertices)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    if count < 2:
        return vertices, faces, 0
    centroids = vertices[faces].mean(axis=1)
    centre = np.median(centroids, axis=0)
    dist = np.linalg.norm(centroids - centre, axis=1)
    radius = max(float(np.quantile(dist, 0.9)), 1e-12)
    face_part = labels[faces[:, 0]]
    part_faces = np.bincount(face_part, minlength=count) / len(faces)
    part_near = np.full(count, np.inf)
    np.minimum.at(part_near, face_part, dist)
    far_from_centre = part_near > STRAY_DISTANCE * radius
    far_from_others = _box_gaps(vertices, faces, face_part, count)
    stray = (far_from_centre | far_from_others) & (part_faces > 0) & (part_faces < STRAY_FACES)
    if not stray.any():
        return vertices, faces, 0
    kept = faces[~stray[face_part]]
    used = np.unique(kept)
    remap = np.full(n, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[kept], int(stray.sum())


def _box_gaps(vertices: np.ndarray, faces: np.ndarray, face_part: np.ndarray, count: int) -> np.ndarray:
    """Per part: whether its bounding box lies further than STRAY_DISTANCE x half the diagonal of the other
    parts' box from that box (parts without faces: False)."""
    corner_part = np.repeat(face_part, 3)
    corners = vertices[faces].reshape(-1, 3)
    lo, hi = np.full((count, 3), np.inf), np.full((count, 3), -np.inf)
    np.minimum.at(lo, corner_part, corners)
    np.maximum.at(hi, corner_part, corners)
    has_faces = np.isfinite(lo[:, 0])
    lo, hi = lo[has_faces], hi[has_faces]
    if len(lo) < 2:
        return np.zeros(count, dtype=bool)
    # the others' box: each axis' extreme over all parts, or the runner-up for the part that holds it
    rows = np.arange(len(lo))
    by_lo, by_hi = np.argsort(lo, axis=0), np.argsort(-hi, axis=0)
    other_lo = np.where(by_lo[0] == rows[:, None], lo[by_lo[1], [0, 1, 2]], lo[by_lo[0], [0, 1, 2]])
    other_hi = np.where(by_hi[0] == rows[:, None], hi[by_hi[1], [0, 1, 2]], hi[by_hi[0], [0, 1, 2]])
    gap = np.linalg.norm(np.maximum(np.maximum(lo - other_hi, other_lo - hi), 0.0), axis=1)
    far = np.zeros(count, dtype=bool)
    far[has_faces] = gap > STRAY_DISTANCE * np.linalg.norm(other_hi - other_lo, axis=1) / 2
    return far


def flatness(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Smallest over largest principal extent of the surface (0 for a plane)."""
    points = vertices[np.unique(faces)]
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    extents = np.ptp(centred @ axes.T, axis=0)
    return float(extents.min() / extents.max()) if extents.max() > 0 else 0.0


# Barycentric sample points per triangle, symmetric under any reordering of its corners.
_PATTERN = np.array([[1 / 3, 1 / 3, 1 / 3],
                     [2 / 3, 1 / 6, 1 / 6], [1 / 6, 2 / 3, 1 / 6], [1 / 6, 1 / 6, 2 / 3],
                     [1 / 2, 1 / 2, 0.0], [0.0, 1 / 2, 1 / 2], [1 / 2, 0.0, 1 / 2]])


def descriptor(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Mirror- and scale-invariant shape signature: area-weighted histograms of |x|, |y|, |z| and radius.

    Points are fixed barycentric positions on every triangle (no randomness), so the same surface gives
    the same signature whatever its face order, corner order, mirroring, position or scale.
    """
    tri = vertices[faces]
    weights = np.repeat(face_areas(vertices, faces) / len(_PATTERN), len(_PATTERN))
    points = np.einsum("pk,fkd->fpd", _PATTERN, tri).reshape(-1, 3)
    used = vertices[np.unique(faces)]
    centre = (used.min(axis=0) + used.max(axis=0)) / 2
    radius = float(np.linalg.norm(used - centre, axis=1).max()) or 1.0
    points = (points - centre) / radius
    total = float(weights.sum()) or 1.0
    bins = np.linspace(0.0, 1.0, DESCRIPTOR_BINS + 1)
    columns = [np.abs(points[:, k]) for k in range(3)] + [np.linalg.norm(points, axis=1)]
    hists = [np.histogram(np.clip(c, 0.0, 1.0), bins=bins, weights=weights)[0] / total for c in columns]
    return np.concatenate(hists).astype(np.float32)


class DuplicateIndex:
    """Descriptors of the meshes kept so far; finds the kept mesh a new one duplicates, if any."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._rows: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None

    def add(self, mesh_id: str, desc: np.ndarray) -> None:
        """Remember a kept mesh's descriptor."""
        self._ids.append(mesh_id)
        self._rows.append(np.asarray(desc, dtype=np.float32))
        self._matrix = None

    def find(self, desc: np.ndarray) -> tuple[str, float] | None:
        """(id, distance) of the nearest kept mesh within DUPLICATE_DISTANCE, or None."""
        if not self._rows:
            return None
        if self._matrix is None:
            self._matrix = np.stack(self._rows)
        dist = np.abs(self._matrix - np.asarray(desc, dtype=np.float32)).sum(axis=1)
        best = int(dist.argmin())
        return (self._ids[best], float(dist[best])) if dist[best] < DUPLICATE_DISTANCE else None

    def __len__(self) -> int:
        return len(self._ids)
