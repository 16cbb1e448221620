"""Closed Mesh: results of a patch model get Blender's Solidify and Voxel Remesh modifiers (Auto, or On),
sized from the Voxel Size setting and each object's own bounding box, and evaluate to one closed manifold
mesh; Off, and Auto with a sphere model, leave the decoded surface as it is."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from .conftest import HERE, REPO, add_mesh_object, backend_python, made, select_only
from .ui_recorder import draw

REMESH_NAME = "AtlasVAE Closed Mesh"
THICKNESS_NAME = "AtlasVAE Closed Mesh Thickness"


@pytest.fixture(scope="module")
def patch_model(addon: Any, user_dir: Path) -> Iterator[Path]:
    """The tiny squares-template model (eight patches on a unit cube) in the user models folder; removed
    again afterwards so the model list other tests see is unchanged."""
    from blender_addon import properties

    folder = user_dir / "models" / "cube_patches"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([backend_python(), str(HERE / "make_tiny_model.py"), str(folder), "cube_patches", "",
                           "squares"], capture_output=True, text=True, env=env, cwd=str(REPO))
    assert proc.returncode == 0, f"could not build the squares tiny model:\n{proc.stderr}"
    properties.refresh_models()
    yield folder.resolve()
    shutil.rmtree(folder, ignore_errors=True)
    properties.refresh_models()


@pytest.fixture()
def closed_mesh_defaults(scene: Any) -> Iterator[Any]:
    """The scene's settings with Closed Mesh at its defaults, restored afterwards for the tests that follow."""
    settings = scene.atlasvae
    for name in ("closed_mesh", "remesh_voxel"):
        settings.property_unset(name)
    yield settings
    for name in ("closed_mesh", "remesh_voxel"):
        settings.property_unset(name)


@pytest.fixture()
def patches(closed_mesh_defaults: Any, patch_model: Path) -> Any:
    """The scene's settings with the squares model chosen (a sample at temperature 0 is the cube)."""
    settings = closed_mesh_defaults
    settings.model = "user/cube_patches"
    settings.count, settings.seed, settings.temperature = 1, 0, 0.0
    settings.closed_mesh = "AUTO"
    return settings


def remesh_of(obj: Any) -> Any:
    """The object's Closed Mesh modifier, or None."""
    return obj.modifiers.get(REMESH_NAME)


def diagonal(obj: Any) -> float:
    """Bounding-box diagonal of the object's own (object-space, unmodified) vertices."""
    co = np.array([v.co[:] for v in obj.data.vertices], dtype=np.float64)
    return float(np.linalg.norm(co.max(axis=0) - co.min(axis=0)))


def evaluated_edges_and_volume(bpy: Any, obj: Any) -> tuple[int, list[int], float]:
    """(vertex count, face count of every edge, enclosed volume) of the object's evaluated mesh."""
    import bmesh

    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        bm = bmesh.new()
        bm.from_mesh(mesh)
        try:
            return len(bm.verts), [len(e.link_faces) for e in bm.edges], float(bm.calc_volume(signed=False))
        finally:
            bm.free()
    finally:
        evaluated.to_mesh_clear()


def test_look_sections_draw_closed_mesh_and_its_voxel_size(closed_mesh_defaults: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    for panel in (panels.VIEW3D_PT_atlasvae_sample, panels.VIEW3D_PT_atlasvae_reconstruct):
        drawn = draw(bpy_module, panel)
        assert {"closed_mesh", "remesh_voxel"} <= set(drawn["props"]), panel.__name__
    assert closed_mesh_defaults.closed_mesh == "OFF"  # opt-in: the remesh costs Blender time on every re-evaluation
    assert closed_mesh_defaults.remesh_voxel == pytest.approx(1 / 80, rel=1e-6)


def test_auto_remeshes_a_patch_sample_into_one_closed_mesh(patches: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}
    (obj,) = made(bpy)
    modifier = remesh_of(obj)
    assert modifier is not None and modifier.type == "REMESH" and modifier.mode == "VOXEL"
    thickness = obj.modifiers.get(THICKNESS_NAME)
    assert list(obj.modifiers) == [thickness, modifier] and thickness.type == "SOLIDIFY"
    size = diagonal(obj)
    assert size == pytest.approx(math.sqrt(3.0), rel=1e-5)  # the decoded cube, side 1 (float32 vertices)
    assert modifier.voxel_size == pytest.approx(size / 80, rel=1e-6)  # the default; stored as float32
    assert thickness.thickness == pytest.approx(2.0 * modifier.voxel_size, rel=1e-6)
    vertices, faces_per_edge, volume = evaluated_edges_and_volume(bpy, obj)
    assert vertices > len(obj.data.vertices) // 4 and faces_per_edge
    assert set(faces_per_edge) == {2}, "every edge of the remeshed result has exactly two faces"
    # the solid unit cube, not a hollow skin: the patches thickened by one voxel each way, then the surface
    # placed within one voxel of that, so every face lies between one voxel inside and two outside
    voxel = modifier.voxel_size
    assert (1.0 - 2.0 * voxel) ** 3 <= volume <= (1.0 + 4.0 * voxel) ** 3
    _v, open_edges, _vol = evaluated_edges_and_volume(bpy, _without_modifier(obj))
    assert set(open_edges) == {1, 2}, "the decoded patches themselves are open"


def _without_modifier(obj: Any) -> Any:
    """`obj` with its Closed Mesh modifiers hidden from the viewport (the evaluated mesh is the raw decode)."""
    for modifier in obj.modifiers:
        modifier.show_viewport = False
    return obj


def test_voxel_size_follows_the_setting(patches: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    results = {}
    for fraction in (0.05, 0.025):
        before = {o.name for o in made(bpy)}
        assert bpy.ops.atlasvae.sample(remesh_voxel=fraction) == {"FINISHED"}
        (obj,) = [o for o in made(bpy) if o.name not in before]
        assert remesh_of(obj).voxel_size == pytest.approx(fraction * diagonal(obj), rel=1e-6)
        results[fraction] = evaluated_edges_and_volume(bpy, obj)[0]
    assert results[0.025] > 3 * results[0.05]  # half the voxel: about four times the surface vertices


def test_voxel_size_follows_each_objects_size(patches: Any, bpy_module: Any) -> None:
    """Reconstructions of a mesh and of the same mesh twice as large: the result and its voxel double."""
    from mathutils import Matrix

    bpy = bpy_module
    small = add_mesh_object(bpy, "Small", "cube")
    large = add_mesh_object(bpy, "Large", "cube", location=(10.0, 0.0, 0.0))
    large.data.transform(Matrix.Scale(2.0, 4))
    select_only(bpy, [small, large])
    assert bpy.ops.atlasvae.reconstruct(fit="encoder", remesh_voxel=0.05) == {"FINISHED"}
    results = {o["atlasvae_source"]: o for o in made(bpy)}
    ratio = diagonal(results["Large"]) / diagonal(results["Small"])
    assert ratio == pytest.approx(2.0, rel=1e-5)
    for obj in results.values():
        assert remesh_of(obj).voxel_size == pytest.approx(0.05 * diagonal(obj), rel=1e-6)
        assert set(evaluated_edges_and_volume(bpy, obj)[1]) == {2}


def test_off_adds_no_modifier_and_the_option_overrides_the_sidebar(patches: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    assert bpy.ops.atlasvae.sample(closed_mesh="OFF") == {"FINISHED"}
    assert [len(o.modifiers) for o in made(bpy)] == [0]
    patches.closed_mesh = "OFF"
    assert bpy.ops.atlasvae.sample(seed=1) == {"FINISHED"}
    assert [len(o.modifiers) for o in made(bpy)] == [0, 0]


def test_auto_leaves_a_sphere_model_alone_and_on_remeshes_it(closed_mesh_defaults: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    settings = closed_mesh_defaults
    settings.closed_mesh = "AUTO"
    assert settings.model == "bundled/tiny"
    settings.count = 1
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}
    assert [len(o.modifiers) for o in made(bpy)] == [0]
    assert bpy.ops.atlasvae.sample(seed=1, closed_mesh="ON", remesh_voxel=0.05) == {"FINISHED"}
    remeshed = [o for o in made(bpy) if remesh_of(o) is not None]
    assert len(remeshed) == 1 and set(evaluated_edges_and_volume(bpy, remeshed[0])[1]) == {2}


def test_variations_and_interpolation_steps_get_the_modifier(patches: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    a = add_mesh_object(bpy, "A", "cube")
    b = add_mesh_object(bpy, "B", "uv_sphere", location=(4.0, 0.0, 0.0))
    select_only(bpy, [a])
    assert bpy.ops.atlasvae.variations(count=2, fit="encoder") == {"FINISHED"}
    select_only(bpy, [a, b])
    assert bpy.ops.atlasvae.interpolate(steps=3, fit="encoder") == {"FINISHED"}
    results = made(bpy)
    assert len(results) == 5 and all(remesh_of(o) is not None for o in results)


def test_shape_key_interpolation_gets_one_modifier(patches: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    a = add_mesh_object(bpy, "A", "cube")
    b = add_mesh_object(bpy, "B", "uv_sphere", location=(6.0, 0.0, 0.0))
    select_only(bpy, [a, b])
    assert bpy.ops.atlasvae.interpolate(steps=3, fit="encoder", as_shape_keys=True, remesh_voxel=0.05) == {"FINISHED"}
    (obj,) = made(bpy)
    assert len(obj.data.shape_keys.key_blocks) == 4 and remesh_of(obj) is not None
    assert set(evaluated_edges_and_volume(bpy, obj)[1]) == {2}


def test_voxel_size_is_sized_for_the_largest_shape_key(addon: Any) -> None:
    """An object whose keys grow: the voxel follows the largest key, so no key gets finer than the setting."""
    from blender_addon.operators.building import NewObject, voxel_size

    cube = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
    item = NewObject("keys", cube, np.zeros((0, 3), dtype=np.int32), np.eye(4), {},
                     shape_keys=[("Step 0", cube), ("Step 1", 3.0 * cube)])
    assert voxel_size(item, 0.05) == pytest.approx(0.05 * 3.0 * math.sqrt(3.0), rel=1e-12)
    assert voxel_size(NewObject("flat", np.zeros((4, 3)), np.zeros((0, 3)), np.eye(4), {}), 0.05) > 0.0
