"""Raising Count with the same seed keeps the shapes already there (issue 28, item 3): the backend seeds
each shape from (seed, index), so the add-on's F9 Count 2 -> 3 adds one shape, it does not replace two."""

from __future__ import annotations

from typing import Any

import numpy as np

from .conftest import clear_scene


def shapes(bpy: Any, seed: int) -> list[np.ndarray]:
    objs = sorted(bpy.data.collections[f"AtlasVAE Samples tiny seed {seed}"].objects, key=lambda o: o["atlasvae_index"])
    out = []
    for obj in objs:
        co = np.empty(len(obj.data.vertices) * 3)
        obj.data.vertices.foreach_get("co", co)
        out.append(co.reshape(-1, 3))
    return out


def test_more_shapes_with_the_same_seed_keep_the_first_ones(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    assert bpy.ops.atlasvae.sample(count=2, seed=9, temperature=1.0) == {"FINISHED"}
    two = shapes(bpy, 9)
    clear_scene(bpy)
    assert bpy.ops.atlasvae.sample(count=3, seed=9, temperature=1.0) == {"FINISHED"}
    three = shapes(bpy, 9)
    assert len(two) == 2 and len(three) == 3
    assert not np.allclose(three[1], three[2]), "the tiny model's shapes differ by seed (not a vacuous check)"
    for a, b in zip(two, three):
        np.testing.assert_array_equal(a, b)
