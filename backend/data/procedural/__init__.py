"""Seeded procedural shape families (sword, plane, chair, table, mug, lamp) for training without downloads.

Each shape is a set of simple closed parts (trimesh boxes, cylinders, cones, capsules, tori, icospheres,
solids of revolution, convex hulls and lofted tubes) placed with rigid transforms and concatenated into
one mesh; parts overlap where they join. `parts.py` holds the shared builders, one module per family
the rest. Units are metres and Z is up, as in Blender. Every family draws its style, proportions and
part counts from the seed, so members of a family differ visibly.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from backend.data.meshio import MESH_SUFFIXES, Mesh, save_mesh
from backend.errors import ConfigError

from . import chairs, lamps, mugs, planes, swords, tables
from .parts import Parts

FAMILIES: tuple[str, ...] = ("sword", "plane", "chair", "table", "mug", "lamp")


def generate(family: str, seed: int) -> Mesh:
    """Build one member of `family`; the same (family, seed) always gives the same mesh."""
    _check_family(family)
    _check_count(seed, "seed", minimum=0)
    rng = np.random.default_rng([int(seed), zlib.crc32(family.encode())])
    parts = Parts()
    _BUILDERS[family](parts, rng)
    return parts.mesh()


def item_seed(seed: int, index: int) -> int:
    """Seed of the index-th member of a set drawn with `seed`: sets with different seeds do not overlap."""
    _check_count(seed, "seed", minimum=0)
    _check_count(index, "index", minimum=0)
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0])


def write_dataset(
    out_dir: str | os.PathLike[str],
    families: Iterable[str],
    per_family: int,
    seed: int,
    suffix: str = ".obj",
) -> list[Path]:
    """Write per_family meshes of each family to out_dir/<family>/<family>_<i:04d><suffix>."""
    names = _check_families(families)
    _check_count(per_family, "per_family", minimum=1)
    _check_count(seed, "seed", minimum=0)
    if not isinstance(suffix, str) or suffix.lower() not in MESH_SUFFIXES:
        raise ConfigError(f"suffix must be one of {', '.join(sorted(MESH_SUFFIXES))}, got {suffix!r}")
    root = Path(out_dir)
    written: list[Path] = []
    for family in names:
        folder = root / family
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create output folder {folder}: {exc.strerror or exc}") from exc
        for index in range(per_family):
            path = folder / f"{family}_{index:04d}{suffix}"
            save_mesh(path, generate(family, item_seed(seed, index)))
            written.append(path)
    return written


def _check_family(family: object) -> None:
    if family not in FAMILIES:
        raise ConfigError(f"unknown shape family {family!r}; choose from {', '.join(FAMILIES)}")


def _check_families(families: Iterable[str]) -> list[str]:
    names = [families] if isinstance(families, str) else list(families)
    if not names:
        raise ConfigError("families must name at least one shape family")
    for family in names:
        _check_family(family)
    return list(dict.fromkeys(names))


def _check_count(value: object, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")


_BUILDERS: dict[str, Callable[[Parts, np.random.Generator], None]] = {
    "sword": swords.build,
    "plane": planes.build,
    "chair": chairs.build,
    "table": tables.build,
    "mug": mugs.build,
    "lamp": lamps.build,
}
