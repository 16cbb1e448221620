"""Seeded procedural shape families (backend/data/procedural.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.data.meshio import load_mesh, validate_mesh
from backend.data.procedural import FAMILIES, generate, item_seed, write_dataset
from backend.errors import ConfigError

SEEDS = range(6)

# Largest bounding-box side, in metres, that a sensible member of each family can have.
SIZE_RANGE = {
    "sword": (0.5, 1.5),
    "plane": (6.0, 70.0),
    "chair": (0.6, 1.3),
    "table": (0.4, 2.3),
    "mug": (0.06, 0.2),
    "lamp": (0.3, 2.5),
}


def extents(family: str, seed: int) -> np.ndarray:
    mesh = generate(family, seed)
    return np.ptp(mesh.vertices, axis=0)


def test_the_six_families_exist() -> None:
    assert set(FAMILIES) == {"sword", "plane", "chair", "table", "mug", "lamp"}


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_mesh(family: str) -> None:
    a, b = generate(family, 11), generate(family, 11)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)


@pytest.mark.parametrize("family", FAMILIES)
def test_members_are_valid_closed_meshes_of_sensible_size(family: str) -> None:
    low, high = SIZE_RANGE[family]
    for seed in SEEDS:
        mesh = generate(family, seed)
        validate_mesh(mesh.vertices, mesh.faces, name=f"{family} {seed}")
        assert len(mesh.faces) <= 5000
        tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        assert tm.is_watertight and tm.is_winding_consistent and tm.volume > 0
        assert low <= np.ptp(mesh.vertices, axis=0).max() <= high, (family, seed)


@pytest.mark.parametrize("family", FAMILIES)
def test_members_of_a_family_vary(family: str) -> None:
    """Different seeds give different proportions, not just a rescaled copy."""
    shapes = np.array([extents(family, seed) for seed in range(8)])
    proportions = shapes / shapes.max(axis=1, keepdims=True)
    assert np.ptp(proportions, axis=0).max() > 0.1
    assert len({len(generate(family, seed).faces) for seed in range(8)}) > 1


@pytest.mark.parametrize("family", ["chair", "table", "mug", "lamp"])
def test_furniture_stands_on_the_floor(family: str) -> None:
    for seed in SEEDS:
        assert generate(family, seed).vertices[:, 2].min() == pytest.approx(0.0, abs=0.03)


def test_families_have_their_characteristic_shapes() -> None:
    for seed in SEEDS:
        sword = extents("sword", seed)
        assert sword[2] > 2.5 * max(sword[0], sword[1])  # long and upright
        plane = extents("plane", seed)
        assert min(plane[0], plane[1]) > 2 * plane[2]  # long and wide, flat
        mug = generate("mug", seed)
        assert mug.vertices[:, 0].max() > mug.vertices[:, 1].max() * 1.1  # the handle sticks out along +X
        chair = extents("chair", seed)
        assert chair[2] > 0.6 and chair[0] < 0.9


def test_item_seeds_are_deterministic_and_distinct() -> None:
    seeds = {item_seed(s, i) for s in range(5) for i in range(50)}
    assert len(seeds) == 250
    assert item_seed(3, 7) == item_seed(3, 7)


def test_write_dataset_layout_and_loadable_files(tmp_path: Path) -> None:
    written = write_dataset(tmp_path / "shapes", ["mug", "sword"], per_family=2, seed=5, suffix=".ply")
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "shapes/mug/mug_0000.ply",
        "shapes/mug/mug_0001.ply",
        "shapes/sword/sword_0000.ply",
        "shapes/sword/sword_0001.ply",
    ]
    loaded = load_mesh(written[1])
    expected = generate("mug", item_seed(5, 1))
    np.testing.assert_allclose(loaded.vertices, expected.vertices, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        (dict(families=["dragon"], per_family=1, seed=0), "unknown shape family 'dragon'"),
        (dict(families=[], per_family=1, seed=0), "at least one"),
        (dict(families=["mug"], per_family=0, seed=0), "per_family must be an integer >= 1"),
        (dict(families=["mug"], per_family=1, seed=-1), "seed must be an integer >= 0"),
        (dict(families=["mug"], per_family=1, seed=0, suffix=".fbx"), "suffix must be one of"),
    ],
)
def test_write_dataset_rejects_bad_arguments(tmp_path: Path, kwargs: dict, phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase):
        write_dataset(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_generate_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="choose from sword, plane"):
        generate("teapot", 0)
    with pytest.raises(ConfigError, match="seed"):
        generate("mug", 1.5)  # type: ignore[arg-type]
