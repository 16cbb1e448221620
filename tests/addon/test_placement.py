"""Operators as an artist and a script use them, in real bpy with the real backend: explicit options,
results placed like Blender's own Add menu (active collection, standing on the cursor's plane, beside
earlier results, selected with the last one active), transforms kept, one undo step, and the look
options (shading, material, shape keys)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from .conftest import add_mesh_object, made, select_only

# Vertex coordinates travel as float32 and are placed with float64 matrices: float32 rounding of a
# coordinate of size ~10 is about 10 * 2**-24 ~ 6e-7; 1e-5 leaves room for a few such steps.
TOL = 1e-5


def world_box(obj: Any) -> tuple[np.ndarray, np.ndarray]:
    co = np.empty(len(obj.data.vertices) * 3)
    obj.data.vertices.foreach_get("co", co)
    m = np.array(obj.matrix_world)
    world = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
    return world.min(axis=0), world.max(axis=0)


def overlaps(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return bool(np.all(a[0] < b[1]) and np.all(b[0] < a[1]))


def test_sample_takes_explicit_options_and_leaves_the_panel_alone(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    settings = scene.atlasvae
    settings.count, settings.seed, settings.temperature, settings.spacing = 2, 1, 1.0, 2.5
    assert bpy.ops.atlasvae.sample(count=5, seed=3, temperature=0.5, resolution=162, spacing=4.0) == {"FINISHED"}
    objs = made(bpy)
    assert len(objs) == 5 and all(o["atlasvae_seed"] == 3 for o in objs)
    assert all(len(o.data.vertices) == 162 for o in objs), "the option wins over the panel's 642"
    assert objs[0]["atlasvae_temperature"] == pytest.approx(0.5)
    xs = sorted({round(o.location.x, 4) for o in objs})
    assert xs == [0.0, 4.0, 8.0]
    assert (settings.count, settings.seed, settings.spacing) == (2, 1, 2.5), "options do not edit the panel"


def test_options_not_given_come_from_the_panel(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    scene.atlasvae.count, scene.atlasvae.seed = 3, 9
    assert bpy.ops.atlasvae.sample(temperature=0.0) == {"FINISHED"}
    objs = made(bpy)
    assert len(objs) == 3 and {o["atlasvae_seed"] for o in objs} == {9}
    assert all(len(o.data.vertices) == 642 for o in objs), "the panel's resolution preset"


def test_shapes_stand_on_the_cursor_plane_in_the_active_collection_and_end_selected(scene: Any,
                                                                                   bpy_module: Any) -> None:
    bpy = bpy_module
    shelf = bpy.data.collections.new("Shelf")
    scene.collection.children.link(shelf)
    bpy.context.view_layer.active_layer_collection = bpy.context.view_layer.layer_collection.children["Shelf"]
    other = add_mesh_object(bpy, "Other", location=(-20.0, 0.0, 0.0))
    select_only(bpy, [other])
    scene.cursor.location = (1.0, 2.0, 0.5)
    assert bpy.ops.atlasvae.sample(count=3, seed=4, spacing=3.0) == {"FINISHED"}
    objs = made(bpy)
    batch = bpy.data.collections["AtlasVAE Samples tiny seed 4"]
    assert batch.name in shelf.children and batch.name not in scene.collection.children
    for obj in objs:
        lo, hi = world_box(obj)
        assert lo[2] == pytest.approx(0.5, abs=TOL), "the shape's lowest point is on the cursor's plane"
        assert obj.location.z == pytest.approx(0.5) and (lo[0] + hi[0]) / 2 == pytest.approx(obj.location.x, abs=TOL)
    assert not other.select_get() and all(o.select_get() for o in objs)
    assert bpy.context.view_layer.objects.active == objs[-1]


def test_a_second_batch_lands_beside_the_first(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    assert bpy.ops.atlasvae.sample(count=4, seed=1, spacing=2.5) == {"FINISHED"}
    first = made(bpy)
    assert bpy.ops.atlasvae.sample(count=4, seed=1, spacing=2.5) == {"FINISHED"}
    second = [o for o in made(bpy) if o not in first]
    assert len(second) == 4
    boxes_1, boxes_2 = [world_box(o) for o in first], [world_box(o) for o in second]
    assert not any(overlaps(a, b) for a in boxes_1 for b in boxes_2)
    shifts = {tuple(np.round(np.asarray(b[0]) - np.asarray(a[0]), 5)) for a, b in zip(boxes_1, boxes_2)}
    assert len(shifts) == 1, "the same seed's batch, moved as a whole"
    (dx, dy, dz), = shifts
    assert dx > 0 and dy == dz == 0, "moved along +X only (free_shift), far enough that nothing overlaps"
    assert {o.name for o in bpy.context.selected_objects} == {o.name for o in second}


def true_box(bpy: Any, obj: Any) -> tuple[np.ndarray, np.ndarray]:
    """World box after Blender has evaluated the scene (matrix_world current)."""
    bpy.context.view_layer.update()
    return world_box(obj)


def test_a_batch_moved_or_reshaped_while_a_sample_runs_is_avoided(interactive: Any, bpy_module: Any) -> None:
    """The timer places a result by the earlier ones' location/rotation/scale and meshes, not by matrix_world
    and bound_box, which Blender updates only on its next evaluation (here: a script's change made while the
    request ran, with no evaluation before the timer applies the answer)."""
    jobs, bpy = interactive, bpy_module
    assert bpy.ops.atlasvae.sample(count=4, seed=1, spacing=2.5) == {"FINISHED"}
    while jobs.pending_kinds():
        jobs.tick()
    moved = made(bpy)
    bpy.context.scene.cursor.location = (20.0, 0.0, 0.0)
    assert bpy.ops.atlasvae.sample(count=1, seed=7) == {"FINISHED"}
    for obj in moved:  # the batch moved 20 along X and grown 3 times, onto the new sample's spot
        obj.location.x += 20.0
        co = np.empty(len(obj.data.vertices) * 3)
        obj.data.vertices.foreach_get("co", co)
        obj.data.vertices.foreach_set("co", co * 3.0)
    while jobs.pending_kinds():
        jobs.tick()
    new = [o for o in made(bpy) if o not in moved]
    assert len(new) == 1
    assert not any(overlaps(true_box(bpy, new[0]), true_box(bpy, o)) for o in moved)


def test_reconstruct_copies_the_source_transform_and_leaves_the_source_alone(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    src = add_mesh_object(bpy, "Rock", kind="monkey", location=(2.0, -1.0, 0.5), rotation=(0.3, 0.2, 1.1),
                          scale=(1.5, 0.8, 1.2))
    select_only(bpy, [src])
    before = (np.array(src.matrix_world), [tuple(v.co) for v in src.data.vertices], src.name)
    assert bpy.ops.atlasvae.reconstruct(resolution=162) == {"FINISHED"}
    result = bpy.data.objects["Rock_recon"]
    assert np.array_equal(np.array(src.matrix_world), before[0]) and src.name == before[2]
    assert [tuple(v.co) for v in src.data.vertices] == before[1], "the source mesh is untouched"
    assert tuple(result.rotation_euler) == pytest.approx(tuple(src.rotation_euler), abs=1e-6)
    assert tuple(result.scale) == pytest.approx(tuple(src.scale), abs=1e-6)
    offset = np.array(result.location) - np.array(src.location)
    assert offset[1] == pytest.approx(0.0, abs=1e-6) and offset[2] == pytest.approx(0.0, abs=1e-6)
    assert offset[0] > 0.0, "beside the source along +X"
    assert not overlaps(world_box(result), world_box(src))
    assert len(result.data.vertices) == 162
    assert bpy.context.view_layer.objects.active == result and result.select_get() and not src.select_get()


def test_reconstructing_twice_does_not_stack_results(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    src = add_mesh_object(bpy, "Ball", location=(0.0, 0.0, 1.0))
    select_only(bpy, [src])
    bpy.ops.atlasvae.reconstruct()
    select_only(bpy, [src])
    bpy.ops.atlasvae.reconstruct()
    first, second = (bpy.data.objects[n] for n in ("Ball_recon", "Ball_recon.001"))
    assert not overlaps(world_box(first), world_box(second))


def test_variations_and_interpolate_take_explicit_options(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    a = add_mesh_object(bpy, "A", location=(-3.0, 0.0, 0.0))
    b = add_mesh_object(bpy, "B", kind="cube", location=(3.0, 0.0, 0.0))
    select_only(bpy, [a])
    assert bpy.ops.atlasvae.variations(count=2, spread=1.0, seed=8, resolution=162) == {"FINISHED"}
    variations = [o for o in made(bpy) if o.name.startswith("A_var")]
    assert len(variations) == 2 and all(o["atlasvae_seed"] == 8 for o in variations)
    assert all(len(o.data.vertices) == 162 for o in variations)
    select_only(bpy, [a, b], active=b)
    assert bpy.ops.atlasvae.interpolate(steps=3, resolution=162) == {"FINISHED"}
    steps = [o for o in made(bpy) if o.name.startswith("A_to_B_")]
    assert len(steps) == 3
    for obj in steps:
        lo, _hi = world_box(obj)
        assert lo[2] == pytest.approx(-1.0, abs=TOL), "standing on the sources' lowest plane"
        assert not overlaps(world_box(obj), world_box(a)) and not overlaps(world_box(obj), world_box(b))


def test_interpolate_as_shape_keys_makes_one_animatable_object(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    a = add_mesh_object(bpy, "A", location=(-3.0, 0.0, 0.0))
    b = add_mesh_object(bpy, "B", kind="cube", location=(3.0, 0.0, 0.0), scale=(0.5, 0.5, 0.5))
    select_only(bpy, [a, b], active=b)
    assert bpy.ops.atlasvae.interpolate(steps=4, as_shape_keys=True, resolution=162, fit="encoder") == {"FINISHED"}
    objs = made(bpy)
    assert [o.name for o in objs] == ["A_to_B"]
    keys = objs[0].data.shape_keys.key_blocks
    assert [k.name for k in keys] == ["Basis"] + [f"Step {i} (t={t})" for i, t in
                                                  enumerate(("0.00", "0.33", "0.67", "1.00"))]
    first, last = (np.array([tuple(p.co) for p in keys[i].data]) for i in (1, 4))
    assert np.ptp(first[:, 0]) == pytest.approx(2.0, rel=0.02) and np.ptp(last[:, 0]) == pytest.approx(
        np.sqrt(3), rel=0.02), "the keys hold the morph from the sphere to the small cube's bounding sphere"
    keys[4].value = 1.0
    keys[4].keyframe_insert("value", frame=10)
    assert objs[0].data.shape_keys.animation_data.action is not None


def test_flat_shading_and_the_shared_material(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    bpy.ops.atlasvae.sample(count=2, shading="FLAT", material=True)
    objs = made(bpy)
    assert not any(p.use_smooth for o in objs for p in o.data.polygons)
    assert all(o.data.materials[0].name == "AtlasVAE Shape" for o in objs)
    assert len([m for m in bpy.data.materials if m.name.startswith("AtlasVAE Shape")]) == 1, "one shared material"
    bpy.ops.atlasvae.sample(count=1, seed=5, material=False)
    plain = [o for o in made(bpy) if o["atlasvae_seed"] == 5]
    assert len(plain[0].data.materials) == 0 and all(p.use_smooth for p in plain[0].data.polygons)


def test_undo_removes_one_batch_and_only_that_batch(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    bpy.ops.ed.undo_push(message="empty")
    bpy.ops.atlasvae.sample(count=2, seed=1)
    bpy.ops.atlasvae.sample(count=3, seed=2)
    assert len(made(bpy)) == 5
    bpy.ops.ed.undo()
    assert sorted(o["atlasvae_seed"] for o in made(bpy)) == [1, 1]


def test_results_carry_the_templates_uv_map(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    bpy.ops.atlasvae.sample(count=2, resolution=162)
    src = add_mesh_object(bpy, "Pebble", location=(0.0, -6.0, 0.0))
    select_only(bpy, [src])
    bpy.ops.atlasvae.reconstruct(resolution=162)
    objs = made(bpy)
    assert len(objs) == 3
    for obj in objs:
        layer = obj.data.uv_layers.active
        assert layer is not None and layer.name == "UVMap"
        uv = np.empty(len(obj.data.loops) * 2, dtype=np.float32)
        layer.data.foreach_get("uv", uv)
        u = uv[0::2].reshape(-1, 3)
        assert np.isfinite(uv).all() and float(np.ptp(uv[1::2])) > 0.9, "latitude spans the map"
        assert float((u.max(axis=1) - u.min(axis=1)).max()) < 0.5, "no triangle stretched across the seam"
    first, second = (np.empty(len(o.data.loops) * 2, dtype=np.float32) for o in objs[:2])
    objs[0].data.uv_layers.active.data.foreach_get("uv", first)
    objs[1].data.uv_layers.active.data.foreach_get("uv", second)
    assert np.array_equal(first, second), "every output of one template shares one UV layout"
