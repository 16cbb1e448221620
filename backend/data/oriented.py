"""Oriented surface samples (points and face normals, unit ball) of reference shapes, for normal consistency.

The point cache holds positions only, so the meshes are read (or, for procedural shapes, rebuilt) again and
normalised exactly as load_folder / procedural_point_sets normalise them, putting these samples in the
frame of the cached points.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from backend.data.datasets import _unit_ball  # the normalisation the cached points had
from backend.data.meshio import load_mesh
from backend.data.procedural import generate, item_seed
from backend.data.sampling import sample_surface_normals
from backend.errors import MeshError

Oriented = tuple[np.ndarray, np.ndarray]


def folder_samples(root: str | os.PathLike[str], names: Sequence[str], count: int, seed: int = 0,
                   max_faces: int = 2_000_000) -> Iterator[Oriented | None]:
    """(points, normals) for each mesh `root/name`, or None for a mesh that can no longer be read."""
    for i, name in enumerate(names):
        try:
            mesh = load_mesh(Path(root) / name, max_faces=max_faces)
            yield sample_surface_normals(_unit_ball(mesh), count, np.random.default_rng([seed, i]))
        except (MeshError, OSError):
            yield None


def procedural_samples(names: Sequence[str], seed: int, count: int) -> Iterator[Oriented]:
    """(points, normals) for each procedural shape named 'family/index' as procedural_point_sets names it."""
    for i, name in enumerate(names):
        family, index = name.rsplit("/", 1)
        mesh = generate(family, item_seed(seed, int(index)))
        yield sample_surface_normals(_unit_ball(mesh), count, np.random.default_rng([seed, i]))
