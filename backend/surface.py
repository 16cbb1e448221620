"""Closed surfaces from decoded shapes: one watertight, manifold, consistently oriented mesh within a face budget.

A patch model's shape is a handful of open square patches that overlap and leave slits; an artist wants one
closed mesh. Method (chosen by measurement against point-cloud-utils' watertight wrapper, pymeshlab's screened
Poisson and pymeshfix: bench/bench_surface.py, docs/benchmarks.md):

1. distance to the patch surface on a voxel grid around the shape (dense surface samples, the nearest one
   per voxel from scipy's feature transform, refined with its face plane: accurate well below a voxel);
2. the outside is what a flood fill from the grid's border reaches without coming closer to the patches
   than CLOSE_VOXELS: slits and gaps narrower than twice that are closed, cavities are filled;
3. a signed field whose zero set lies THICKNESS_VOXELS / 2 outside the patches on the outside's side and
   through closed gaps elsewhere, so marching cubes sees a single sheet (a table top) as a thin solid;
4. marching cubes (scikit-image, Lewiner: topologically consistent cases, so the result is closed and manifold);
5. pieces under KEEP_FRACTION of the largest one's area are dropped (and counted), Taubin smoothing (trimesh:
   smooths without shrinking), vertices that float on the offset pulled back to PULL_VOXELS from the patches,
   then libigl's edge-collapse decimation to the face budget, which keeps the mesh manifold (it checks the
   link condition; fast-simplification's quadric collapse joined the two sides of thin sheets).

The grid's resolution follows the budget (MIN_GRID to MAX_GRID voxels along the longest side), so a larger
budget keeps finer detail and takes longer. Pure numpy in, numpy out; works in whatever frame the vertices
are in (the service calls it in the unit ball).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .data.meshio import Mesh
from .errors import ConfigError, MeshError
from .limits import DEFAULT_FACE_BUDGET, MAX_FACE_BUDGET, MIN_FACE_BUDGET, SURFACE_CHOICES

PATCH_TEMPLATE = "squares"  # the template whose shapes are open patches: "auto" closes them

CLOSE_VOXELS = 2.0  # flood-fill clearance: gaps up to twice this many voxels wide are closed
THICKNESS_VOXELS = 1.2  # offset of the surface around the patches, both sides: a sheet's closed thickness
MC_FACES_PER_AREA = 4.0  # marching-cubes faces per voxel-face of patch area (measured 1-4 on the base's samples)
DECIMATION_HEADROOM = 3.0  # marching cubes aims at this many times the budget, decimation takes it down
MIN_GRID, MAX_GRID = 48, 192  # voxels along the longest side
SAMPLE_SPACING = 0.5  # surface samples' spacing in voxels
SIDEWAYS_SLACK = 0.9  # voxels: how far sideways a voxel's sample may lie from the point nearest to it
MAX_SAMPLES = 600_000
KEEP_FRACTION = 0.05  # pieces with less than this share of the largest piece's area are dropped as strays
TAUBIN_ITERATIONS = 10
PULL_VOXELS = 0.15  # the closed surface's distance from the patches after pulling back, in voxels
# field values closer to zero than this many voxels are pushed out to it before marching cubes: a vertex then
# never lands on a grid corner, where scikit-image's degenerate-face removal would merge it with its
# neighbours' vertices into an edge with four faces (a building sample did that; libigl then refused it)
MIN_FIELD_VOXELS = 1e-3
SEED = 0


@dataclass(frozen=True)
class Surface:
    """A closed mesh and what making it dropped."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64, outward-facing triangles
    pieces_dropped: int  # stray pieces left out (each smaller than KEEP_FRACTION of the largest)


@dataclass(frozen=True)
class ShapeMesh(Mesh):
    """A result mesh that says which surface it is: "closed" (this module's) or "patches" (the decoded
    template mesh, whose corners match the template's UVs), and how many stray pieces closing it dropped.

    A result of the model also says where it came from, so a client can decode it again in the same place
    (the Shape Explorer): its `latent` code, the frame vertices = unit-ball vertices * `scale` + `offset`,
    and the family `label` whose prior drew it (None when none did)."""

    surface: str = "patches"
    pieces_dropped: int = 0
    latent: np.ndarray | None = None
    scale: float = 1.0
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    label: str | None = None

    def placed(self, scale: float, offset: "np.ndarray | Sequence[float]") -> "ShapeMesh":
        """This unit-ball result moved into the frame (`scale`, `offset`), which it then records."""
        shift = np.asarray(offset, dtype=np.float64).reshape(3)
        return dataclasses.replace(self, vertices=self.vertices * scale + shift, scale=float(scale),
                                   offset=(float(shift[0]), float(shift[1]), float(shift[2])))


def check_surface(value: object, name: str = "surface") -> str:
    """`value` as a surface choice, or a ConfigError naming `name` and the choices."""
    if not isinstance(value, str) or value not in SURFACE_CHOICES:
        raise ConfigError(f"{name} must be one of {', '.join(SURFACE_CHOICES)}, got {value!r}")
    return value


def resolve_surface(choice: str, template: str) -> str:
    """"closed" or "patches" for a `choice` of SURFACE_CHOICES and a model's template: auto closes open
    patches and keeps a sphere template's mesh, which is already one closed surface."""
    if check_surface(choice) != "auto":
        return choice
    return "closed" if template == PATCH_TEMPLATE else "patches"


def finish(vertices: np.ndarray, faces: np.ndarray, surface: str, face_budget: int) -> ShapeMesh:
    """The decoded mesh as the result surface asked for ("closed" or "patches", resolved already); a shape
    with no area to close (every patch collapsed) comes back as it is, marked "patches"."""
    if surface == "patches":
        return ShapeMesh(vertices, faces, surface="patches")
    try:
        closed = closed_surface(vertices, faces, face_budget)
    except MeshError:
        return ShapeMesh(vertices, faces, surface="patches")
    return ShapeMesh(closed.vertices, closed.faces, surface="closed", pieces_dropped=closed.pieces_dropped)


def check_face_budget(value: object, name: str = "face_budget") -> int:
    """`value` as a face budget, or a ConfigError naming `name` and the bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
            MIN_FACE_BUDGET <= value <= MAX_FACE_BUDGET):
        raise ConfigError(f"{name} must be an integer between {MIN_FACE_BUDGET} and {MAX_FACE_BUDGET} "
                          f"(faces of the closed mesh), got {value!r}")
    return int(value)


def closed_surface(vertices: np.ndarray, faces: np.ndarray, face_budget: int = DEFAULT_FACE_BUDGET,
                   grid: int | None = None) -> Surface:
    """One watertight, manifold, outward-oriented mesh around the surface (V, 3) `vertices`, (F, 3) `faces`
    (open, overlapping patches or anything else), with at most `face_budget` faces.

    `grid` (voxels along the longest side) overrides the one chosen from the budget (benchmarks)."""
    budget = check_face_budget(face_budget)
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if not len(v) or not len(f) or not np.isfinite(v).all() or f.min() < 0 or f.max() >= len(v):
        raise MeshError("cannot close the surface: it has no valid triangles")
    corners = v[f]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    double_areas = np.linalg.norm(normals, axis=1)
    area = float(double_areas.sum()) / 2
    extent = float((v.max(axis=0) - v.min(axis=0)).max())
    if not (area > 0 and extent > 0):
        raise MeshError("cannot close the surface: it has no area")
    if grid is None:
        # marching cubes gives about MC_FACES_PER_AREA faces per voxel face of area (h^2)
        h = math.sqrt(MC_FACES_PER_AREA * area / (DECIMATION_HEADROOM * budget))
        grid = int(np.clip(round(extent / h), MIN_GRID, MAX_GRID))
    try:
        return _close(v, f, corners, normals, double_areas, area, grid, budget)
    except MeshError:
        # a grid one voxel finer lies differently across the shape and gives another triangulation
        return _close(v, f, corners, normals, double_areas, area, grid + 1, budget)


def _close(v: np.ndarray, f: np.ndarray, corners: np.ndarray, normals: np.ndarray, double_areas: np.ndarray,
           area: float, grid: int, budget: int) -> Surface:
    """closed_surface's steps on one grid; a MeshError when the result is not closed and manifold."""
    field, origin, h, samples = _field(v, f, corners, normals, double_areas, area, grid)
    mesh = _marching_cubes(field, origin, h)
    mesh, dropped = _keep_large_pieces(*mesh)
    out_v, out_f = _smooth(*mesh)
    out_v = _pull_back(out_v, samples, h)
    out_v, out_f = _decimate(out_v, out_f, budget)
    if not is_closed_manifold(out_f):
        raise MeshError(f"cannot close the surface: the mesh made on a {grid}-voxel grid is not closed and manifold")
    return Surface(out_v, out_f, dropped)


def _field(v: np.ndarray, f: np.ndarray, corners: np.ndarray, normals: np.ndarray, double_areas: np.ndarray,
           area: float, grid: int) -> tuple[np.ndarray, np.ndarray, float, tuple[np.ndarray, np.ndarray]]:
    """The signed field (negative inside), its grid origin and spacing, and the surface samples with their
    faces' unit normals."""
    from scipy import ndimage

    lo, hi = v.min(axis=0), v.max(axis=0)
    h = float((hi - lo).max()) / (grid - 1)
    reach = int(math.ceil(CLOSE_VOXELS + THICKNESS_VOXELS)) + 1  # voxels around the patches the field needs
    pad = reach + 2
    origin = lo - pad * h
    shape = tuple(int(s) for s in np.ceil((hi - lo) / h).astype(int) + 1 + 2 * pad)
    # dense samples and their faces' unit normals
    spacing = SAMPLE_SPACING * h
    n = int(np.clip(area / spacing ** 2, 1000, MAX_SAMPLES))
    rng = np.random.default_rng(SEED)
    cumulative = np.cumsum(double_areas)
    picks = np.minimum(np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right"), len(f) - 1)
    uv = rng.random((n, 2))
    flip = uv.sum(axis=1) > 1.0
    uv[flip] = 1.0 - uv[flip]
    c = corners[picks]
    points = c[:, 0] + uv[:, :1] * (c[:, 1] - c[:, 0]) + uv[:, 1:] * (c[:, 2] - c[:, 0])
    unit = normals[picks] / np.maximum(double_areas[picks], 1e-300)[:, None]
    cells = np.round((points - origin) / h).astype(np.int64)
    occupied = np.zeros(shape, dtype=bool)
    occupied[tuple(cells.T)] = True
    owner = np.zeros(shape, dtype=np.int32)  # one sample in each occupied voxel
    owner[tuple(cells.T)] = np.arange(n)
    # the nearest occupied voxel of every voxel near the surface (scipy's feature transform), then its sample
    band = ndimage.binary_dilation(occupied, structure=np.ones((3, 3, 3), bool), iterations=reach)
    nearest_cell = ndimage.distance_transform_edt(~occupied, return_distances=False, return_indices=True)
    index = np.nonzero(band)
    centres = np.stack(index, axis=1) * h + origin
    nearest = owner[tuple(c[index] for c in nearest_cell)]
    # that sample's face plane gives the distance well below a voxel; off the side of a sheet's edge, the
    # sideways distance beyond a voxel's reach counts too
    offset = centres - points[nearest]
    across = np.abs(np.einsum("ij,ij->i", offset, unit[nearest]))
    sideways = np.sqrt(np.maximum(np.einsum("ij,ij->i", offset, offset) - across ** 2, 0.0))
    refined = np.sqrt(across ** 2 + np.maximum(sideways - SIDEWAYS_SLACK * h, 0.0) ** 2)
    far = (reach + 1) * h
    distance = np.full(shape, far, dtype=np.float32)
    distance[index] = np.minimum(refined, far)
    # the outside: reachable from the border without coming within CLOSE_VOXELS of the surface
    labels, _count = ndimage.label(distance >= CLOSE_VOXELS * h)
    border = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(),
                                       labels[:, :, [0, -1]].ravel()]))
    outside = np.isin(labels, border[border > 0])
    # a voxel within CLOSE + THICKNESS / 2 of the outside sees the patches from outside: the surface is the
    # offset there; deeper ones are inside (filled cavities, closed gaps)
    half = THICKNESS_VOXELS / 2 * h
    near_outside = ndimage.distance_transform_edt(~outside) * h < CLOSE_VOXELS * h + half
    field = np.where(near_outside, distance - half, -(distance + half)).astype(np.float32)
    return field, origin, h, (points, unit)


def _marching_cubes(field: np.ndarray, origin: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """The field's zero set as a closed, manifold triangle mesh; `field` is changed in place (values within
    MIN_FIELD_VOXELS of zero keep their side and move out to it)."""
    from skimage.measure import marching_cubes

    near_zero = np.abs(field) < MIN_FIELD_VOXELS * h
    field[near_zero] = np.where(field[near_zero] < 0, -MIN_FIELD_VOXELS * h, MIN_FIELD_VOXELS * h)
    verts, faces, _normals, _values = marching_cubes(field, 0.0, spacing=(h, h, h), allow_degenerate=False)
    # the field grows outwards, so scikit-image's triangles already wind counter-clockwise seen from outside
    return verts.astype(np.float64) + origin, faces.astype(np.int64)


def _keep_large_pieces(v: np.ndarray, f: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """Drop connected pieces with less than KEEP_FRACTION of the largest one's area; (mesh, pieces dropped)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(len(v), len(v)))
    count, piece = connected_components(graph, directed=False)
    if count == 1:
        return (v, f), 0
    face_piece = piece[f[:, 0]]
    corners = v[f]
    areas = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    piece_area = np.bincount(face_piece, weights=areas, minlength=count)
    used = np.bincount(face_piece, minlength=count) > 0
    keep_piece = piece_area >= KEEP_FRACTION * piece_area.max()
    keep = keep_piece[face_piece]
    return _compact(v, f[keep]), int((used & ~keep_piece).sum())


def _compact(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Only the vertices `f` uses, renumbered."""
    used, inverse = np.unique(f, return_inverse=True)
    return v[used], inverse.reshape(-1, 3).astype(np.int64)


def _smooth(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    mesh = trimesh.Trimesh(v, f, process=False)
    trimesh.smoothing.filter_taubin(mesh, iterations=TAUBIN_ITERATIONS)
    return np.asarray(mesh.vertices, dtype=np.float64), f


def _pull_back(v: np.ndarray, samples: tuple[np.ndarray, np.ndarray], h: float) -> np.ndarray:
    """Vertices that float on the offset around the patches moved along the nearest sample's face normal to
    PULL_VOXELS from it: the offset that let marching cubes see thin sheets no longer biases the surface
    outwards, and a sheet keeps 2 x PULL_VOXELS of thickness. Vertices farther out (caps over closed gaps)
    stay; those in between move part of the way."""
    from scipy.spatial import cKDTree

    points, unit = samples
    dist, nearest = cKDTree(points).query(v)
    across = np.einsum("ij,ij->i", v - points[nearest], unit[nearest])
    excess = np.sign(across) * np.maximum(np.abs(across) - PULL_VOXELS * h, 0.0)
    reach = THICKNESS_VOXELS / 2 * h
    weight = np.clip((2 * reach - dist) / reach, 0.0, 1.0)  # 1 up to the offset, 0 from twice it on
    out: np.ndarray = v - (weight * excess)[:, None] * unit[nearest]
    return out


def _decimate(v: np.ndarray, f: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `budget` faces, still closed and manifold: libigl's edge collapse checks each collapse
    against the link condition (quadric decimators without that check, fast-simplification's, join the two
    sides of thin sheets into edges with four faces)."""
    if len(f) <= budget:
        return v, f
    import igl

    dv, df = igl.decimate(np.asfortranarray(v), np.asfortranarray(f.astype(np.int32)), budget)[:2]
    if np.asarray(df).size == 0:  # libigl returns nothing for a mesh that is not edge-manifold
        raise MeshError(f"cannot close the surface: the decimation of its {len(f):,} faces to {budget:,} failed")
    return _clean(np.asarray(dv, np.float64), np.asarray(df, np.int64).reshape(-1, 3))


def _clean(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Without degenerate faces (a repeated corner) and without the vertices no face uses."""
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    return _compact(v, f)


def is_closed_manifold(faces: np.ndarray) -> bool:
    """Whether every edge has exactly two faces that use it in opposite directions (closed, manifold,
    consistently oriented); non-manifold vertices (two fans touching at a point) are not checked."""
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if not len(f):
        return False
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    n = int(f.max()) + 1
    codes = directed[:, 0] * n + directed[:, 1]
    reverse = directed[:, 1] * n + directed[:, 0]
    if len(np.unique(codes)) != len(codes):
        return False
    return bool(np.isin(reverse, codes, assume_unique=True).all())
