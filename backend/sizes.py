"""Real-world sizes: what a model records of its training shapes' sizes, and results scaled to them.

A model folder's config.json may hold meta["sizes"] = {"overall": [x, y, z], "labels": {label: [x, y, z]},
"shapes": N}: the median bounding-box size per axis, in metres (the training files' units), of all its
training shapes and of each label's. A sample then comes out at its family's size: scaled uniformly so
its bounding-box diagonal is that size's diagonal, centred on the origin in x and y and standing on z = 0.
Torch-free, so the CLI can check a model's sizes before the model is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CheckpointError

SIZES_KEY = "sizes"
DIGITS = 4  # sizes are written rounded to 0.1 mm


@dataclass(frozen=True)
class Sizes:
    """Typical (x, y, z) sizes in metres: over all training shapes, and per label."""

    overall: tuple[float, float, float]
    labels: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def of(self, label: str | None) -> tuple[float, float, float]:
        """The label's typical size, else the overall one (no label, or a label with no size recorded)."""
        return self.labels.get(label, self.overall) if label is not None else self.overall


def typical_sizes(extents: np.ndarray, labels: list[str]) -> dict[str, Any] | None:
    """meta["sizes"] for shapes of these (N, 3) extents and labels: medians overall and per label.

    Shapes whose extents are not finite and positive on every axis are left out; None when none is left."""
    ext = np.asarray(extents, dtype=np.float64).reshape(-1, 3)
    good = np.isfinite(ext).all(axis=1) & (ext > 0).all(axis=1)
    if not good.any():
        return None
    names = np.asarray(labels, dtype=object)

    def median(mask: np.ndarray) -> list[float]:
        return [round(float(v), DIGITS) for v in np.median(ext[mask & good], axis=0)]

    per_label = {str(label): median(names == label) for label in sorted(set(labels)) if (good & (names == label)).any()}
    return {"overall": median(good), "labels": per_label, "shapes": int(good.sum())}


def read_sizes(meta: dict[str, Any], where: str) -> Sizes | None:
    """The sizes a model's metadata records, or None for a model from before sizes were kept.

    `where` names the config file in the error a malformed entry raises (the metadata is not checksummed)."""
    raw = meta.get(SIZES_KEY)
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("labels", {}), dict):
        raise CheckpointError(f"{where}: meta.{SIZES_KEY} must be an object with 'overall' and 'labels'")
    labels = {str(k): _size(v, f"{where}: meta.{SIZES_KEY}.labels.{k}") for k, v in raw.get("labels", {}).items()}
    return Sizes(overall=_size(raw.get("overall"), f"{where}: meta.{SIZES_KEY}.overall"), labels=labels)


def _size(value: Any, what: str) -> tuple[float, float, float]:
    ok = isinstance(value, list) and len(value) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in value)
    if not ok:
        raise CheckpointError(f"{what} must be three positive sizes in metres [x, y, z], got {value!r}")
    return float(value[0]), float(value[1]), float(value[2])


def size_frame(vertices: np.ndarray, size: tuple[float, float, float]) -> tuple[float, np.ndarray]:
    """The (scale, offset) that at_size applies to `vertices`: sized = vertices * scale + offset."""
    v = np.asarray(vertices, dtype=np.float64)
    lo, hi = v.min(axis=0), v.max(axis=0)
    diagonal = float(np.linalg.norm(hi - lo))
    scale = float(np.linalg.norm(size)) / diagonal if diagonal > 0 else 1.0
    base = np.array([(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0, lo[2]])
    return scale, -base * scale


def at_size(vertices: np.ndarray, size: tuple[float, float, float]) -> np.ndarray:
    """`vertices` (V, 3) scaled uniformly so their bounding-box diagonal is `size`'s, centred on the origin in
    x and y, standing on z = 0 (their lowest point)."""
    scale, offset = size_frame(vertices, size)
    out: np.ndarray = np.asarray(vertices, dtype=np.float64) * scale + offset
    return out
