"""Where results go, as plain arithmetic on vertex arrays and axis-aligned boxes: the base point a shape
stands on, the spacing of a grid or a row, the place beside a source object, and the smallest move along +X
that clears earlier results. No bpy: operators/building.py and the generation operators read the scene and
call these, and plain pytest checks them (tests/addon/test_layout.py).
"""

from __future__ import annotations

import numpy as np

MIN_GAP = 1.0
MAX_SHIFTS = 1000

Box = tuple[np.ndarray, np.ndarray]  # axis-aligned (min, max) corners in world space


def translation(offset: np.ndarray) -> np.ndarray:
    """A 4x4 matrix that moves by `offset`."""
    m = np.eye(4)
    m[:3, 3] = offset
    return m


def box_of(vertices: np.ndarray) -> Box:
    """Axis-aligned (min, max) corners of (V, 3) points."""
    pts = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    return pts.min(axis=0), pts.max(axis=0)


def standing(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vertices relative to their base point, base point): the base point is the bottom centre of the
    bounding box, so an object whose origin is there stands on the plane its origin is on."""
    lo, hi = box_of(vertices)
    base = np.array([(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0, lo[2]])
    return vertices - base, base


def gap(vertices: np.ndarray) -> float:
    """How far apart to put copies of a shape side by side along X: its width plus a fifth."""
    lo, hi = box_of(vertices)
    width = float(hi[0] - lo[0])
    return width * 1.2 if width > 1e-4 else MIN_GAP


def grid_pitch(shapes: list[np.ndarray], spacing: float) -> float:
    """Distance between neighbouring cells of a grid of `shapes`: `spacing`, or the widest shape's footprint
    (x or y) and a tenth when that is more, so shapes at real size (a building beside a chair) never overlap."""
    widest = max((float(max(hi[0] - lo[0], hi[1] - lo[1])) for lo, hi in map(box_of, shapes)), default=0.0)
    return max(spacing, widest * 1.1)


def beside(source: np.ndarray, result: np.ndarray) -> float:
    """How far along +X to move `result` (in the source's place) so it stands clear beside `source`:
    the source's width and a fifth, or more when the result reaches further than the source."""
    src_lo, src_hi = box_of(source)
    res_lo, _res_hi = box_of(result)
    width = float(src_hi[0] - src_lo[0])
    return max(gap(source), float(src_hi[0] - res_lo[0]) + 0.1 * max(width, MIN_GAP))


def _overlap(a: Box, b: Box, margin: float) -> bool:
    return bool(np.all(a[0] < b[1] + margin) and np.all(b[0] < a[1] + margin))


def free_shift(boxes: list[Box], obstacles: list[Box], step: float, margin: float = 0.0) -> np.ndarray:
    """The smallest move k * step along +X (k = 0, 1, ...) after which none of `boxes` overlaps any of
    `obstacles` (with `margin` between them), so a new batch lands beside earlier ones."""
    step = max(step, MIN_GAP * 0.1)
    for k in range(MAX_SHIFTS):
        shift = np.array([k * step, 0.0, 0.0])
        moved = [(lo + shift, hi + shift) for lo, hi in boxes]
        if not any(_overlap(b, o, margin) for b in moved for o in obstacles):
            return shift
    return np.array([MAX_SHIFTS * step, 0.0, 0.0])
