"""Every operator end to end in headless bpy against the real backend and the tiny test model.

The tiny model decodes a zero code to the unit sphere and its encoder always gives zero, so a
reconstruction is exactly the input's bounding sphere in the input's frame: placement in world
space can be checked precisely.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import ADDON_MODULE, add_mesh_object, made, select_only


def world_vertices(obj: Any) -> np.ndarray:
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    m = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def local_vertices(obj: Any) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3)
    obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def bbox(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points.min(axis=0), points.max(axis=0)


def runtime(bpy: Any) -> Any:
    return bpy.context.window_manager.atlasvae_runtime


def test_sample_makes_a_collection_on_a_grid_at_the_cursor(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    settings = scene.atlasvae
    settings.count, settings.seed, settings.temperature, settings.spacing = 5, 7, 0.8, 3.0
    scene.cursor.location = (1.0, 2.0, 0.5)
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}
    collection = bpy.data.collections["AtlasVAE Samples tiny seed 7"]
    assert collection.name in scene.collection.children
    objs = sorted(collection.objects, key=lambda o: o["atlasvae_index"])
    assert [o.name for o in objs] == [f"tiny_s7_{i}" for i in range(5)]
    assert all(len(o.data.vertices) == 642 and len(o.data.polygons) == 1280 for o in objs)
    assert [(o["atlasvae_model"], o["atlasvae_seed"], o["atlasvae_index"]) for o in objs] == \
        [("tiny", 7, i) for i in range(5)]
    assert objs[0]["atlasvae_temperature"] == pytest.approx(0.8)
    locations = [tuple(round(x, 4) for x in o.location) for o in objs]
    # Spacing 3, or the widest footprint and a tenth when that is more (these bent spheres are ~3.4 wide)
    pitch = max(3.0, 1.1 * max(float(max(np.ptp(v[:, 0]), np.ptp(v[:, 1]))) for v in map(local_vertices, objs)))
    grid = [(1.0 + pitch * col, 2.0 + pitch * row, 0.5) for row, col in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1))]
    assert locations == [tuple(round(x, 4) for x in cell) for cell in grid]
    assert not np.allclose(local_vertices(objs[0]), local_vertices(objs[1])), "different samples expected"
    assert "Sampled 5 shapes from tiny (seed 7)" in runtime(bpy).last_report


def test_same_seed_gives_same_shapes_and_random_seed_is_written_back(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    settings = scene.atlasvae
    settings.count, settings.seed = 1, 11
    bpy.ops.atlasvae.sample()
    bpy.ops.atlasvae.sample()
    first, second = (c.objects[0] for c in bpy.data.collections if c.name.startswith("AtlasVAE Samples tiny seed 11"))
    assert np.allclose(local_vertices(first), local_vertices(second))
    settings.random_seed = True
    bpy.ops.atlasvae.sample()
    newest = [o for o in made(bpy) if o["atlasvae_seed"] != 11]
    assert len(newest) == 1 and newest[0]["atlasvae_seed"] == settings.seed


def test_reconstruct_places_the_result_beside_an_untouched_original(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    original = add_mesh_object(bpy, "Ball", location=(3.0, -2.0, 1.5), rotation=(0.4, 0.3, 0.9),
                               scale=(1.7, 1.7, 1.7))
    select_only(bpy, [original])
    before_vertices = local_vertices(original).copy()
    before_matrix = np.array(original.matrix_world)
    assert bpy.ops.atlasvae.reconstruct() == {"FINISHED"}
    assert np.array_equal(local_vertices(original), before_vertices)
    assert np.array_equal(np.array(original.matrix_world), before_matrix)
    result = bpy.data.objects["Ball_recon"]
    assert result.users_collection[0] == original.users_collection[0]
    lo, hi = bbox(world_vertices(original))
    offset = np.array([(hi[0] - lo[0]) * 1.2, 0.0, 0.0])
    rlo, rhi = bbox(world_vertices(result))
    size = float(np.max(hi - lo))
    assert np.allclose(rlo, lo + offset, atol=0.02 * size) and np.allclose(rhi, hi + offset, atol=0.02 * size)
    assert result["atlasvae_source"] == "Ball" and result["atlasvae_chamfer_x1e3"] >= 0.0
    assert "Chamfer x1e-3: Ball" in runtime(bpy).last_report


def test_reconstruct_uses_world_space_with_rotation_and_non_uniform_scale(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    egg = add_mesh_object(bpy, "Egg", location=(-4.0, 1.0, 2.0), rotation=(0.0, 0.0, np.pi / 2),
                          scale=(2.0, 1.0, 0.6))
    select_only(bpy, [egg])
    bpy.ops.atlasvae.reconstruct(fit="encoder")  # the identity model gives back the sphere it was shown
    world = world_vertices(egg)
    center = world.mean(axis=0)
    radius = float(np.linalg.norm(world - center, axis=1).max())
    lo, hi = bbox(world)
    assert hi[1] - lo[1] == pytest.approx(4.0, rel=1e-3), "the rotation turns the long axis onto Y"
    recon = bpy.data.objects["Egg_recon"]
    result = world_vertices(recon) - (np.array(recon.location) - np.array(egg.location))
    assert np.allclose(result.mean(axis=0), center, atol=0.03)
    assert np.linalg.norm(result - center, axis=1).max() == pytest.approx(radius, rel=0.02)


def test_reconstruct_applies_modifiers_and_handles_several_objects(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    box = add_mesh_object(bpy, "Box", kind="cube", location=(0.0, 5.0, 0.0))
    array = box.modifiers.new("Array", "ARRAY")
    array.count = 3
    ball = add_mesh_object(bpy, "Ball2", location=(0.0, -5.0, 0.0))
    select_only(bpy, [box, ball])
    assert bpy.ops.atlasvae.reconstruct() == {"FINISHED"}
    result = bpy.data.objects["Box_recon"]
    evaluated_width = 6.0
    assert tuple(result.location) == pytest.approx((evaluated_width * 1.2, 5.0, 0.0), abs=1e-4), \
        "the source's origin, moved beside it by the evaluated width and a fifth"
    assert len(box.data.vertices) == 8, "the original mesh keeps its own data"
    assert "Ball2_recon" in bpy.data.objects


def test_interpolate_two_selected_meshes(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    a = add_mesh_object(bpy, "A", location=(-3.0, 0.0, 0.0))
    b = add_mesh_object(bpy, "B", kind="cube", location=(3.0, 0.0, 0.0), scale=(0.5, 0.5, 0.5))
    select_only(bpy, [a, b], active=b)
    scene.atlasvae.steps = 4
    assert bpy.ops.atlasvae.interpolate(fit="encoder") == {"FINISHED"}
    collection = bpy.data.collections["AtlasVAE Interpolation A to B"]
    objs = sorted(collection.objects, key=lambda o: o["atlasvae_index"])
    assert [o.name for o in objs] == [f"A_to_B_{i}" for i in range(4)]
    sizes = [float(np.ptp(world_vertices(o)[:, 0])) for o in objs]
    assert sizes[0] == pytest.approx(2.0, rel=0.02) and sizes[-1] == pytest.approx(np.sqrt(3) * 1.0, rel=0.02)
    assert [o["atlasvae_t"] for o in objs] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])


def test_variations_of_the_active_mesh(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    ball = add_mesh_object(bpy, "Orb", location=(0.0, 0.0, 2.0))
    select_only(bpy, [ball])
    settings = scene.atlasvae
    settings.variation_count, settings.spread, settings.variation_seed = 3, 1.0, 5
    assert bpy.ops.atlasvae.variations() == {"FINISHED"}
    objs = sorted(bpy.data.collections["AtlasVAE Variations Orb"].objects, key=lambda o: o.name)
    assert [o.name for o in objs] == ["Orb_var0", "Orb_var1", "Orb_var2"]
    xs = [o.location.x for o in objs]
    assert xs[0] >= 2.4 and xs[1] - xs[0] == pytest.approx(xs[0]) and xs[2] - xs[1] == pytest.approx(xs[0]), \
        "an even row beside the source, at least its width and a fifth apart"
    assert all(tuple(o.location)[1:] == pytest.approx((0.0, 2.0)) for o in objs)
    assert not np.allclose(local_vertices(objs[0]), local_vertices(objs[1]))


def test_undo_removes_sampled_shapes(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    bpy.ops.ed.undo_push(message="before sampling")
    scene.atlasvae.count, scene.atlasvae.seed = 2, 3
    bpy.ops.atlasvae.sample()
    assert "AtlasVAE Samples tiny seed 3" in bpy.data.collections and len(made(bpy)) == 2
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert "AtlasVAE Samples tiny seed 3" not in bpy.data.collections
    assert made(bpy) == []
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert len(made(bpy)) == 2


def test_empty_or_non_mesh_selection_is_refused_with_a_reason(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    select_only(bpy, [])
    with pytest.raises(RuntimeError, match="Select at least one mesh object"):
        bpy.ops.atlasvae.reconstruct()
    with pytest.raises(RuntimeError, match="Make a mesh object active"):
        bpy.ops.atlasvae.variations()
    bpy.ops.object.empty_add(location=(0, 0, 0))
    empty = bpy.context.active_object
    select_only(bpy, [empty])
    with pytest.raises(RuntimeError, match="Select at least one mesh object"):
        bpy.ops.atlasvae.reconstruct()
    with pytest.raises(RuntimeError, match="Select exactly two mesh objects"):
        bpy.ops.atlasvae.interpolate()
    assert made(bpy) == []


def test_mesh_without_faces_is_cancelled_with_an_error_report(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    mesh = bpy.data.meshes.new("Points")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [])
    obj = bpy.data.objects.new("Points", mesh)
    scene.collection.objects.link(obj)
    select_only(bpy, [obj])
    with pytest.raises(RuntimeError, match="Object 'Points' has no faces"):
        bpy.ops.atlasvae.reconstruct()
    assert runtime(bpy).last_report.startswith("ERROR: Object 'Points' has no faces")


def test_backend_rejection_is_reported_with_its_own_message(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    settings = scene.atlasvae
    settings.count, settings.resolution_preset, settings.custom_resolution = 256, "CUSTOM", 200_000
    with pytest.raises(RuntimeError, match=r"Sample Shapes failed: params 'count' x 'resolution'"):
        bpy.ops.atlasvae.sample()
    assert "count' x 'resolution'" in runtime(bpy).last_report


def _kill_when_busy(client: Any, killed: list[int], stop: threading.Event) -> None:
    while client.state != "busy":
        if stop.is_set():
            return  # the request never reached the backend: kill nothing (another test's backend least of all)
        time.sleep(0.005)
    pid = client.pid
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


def test_killed_backend_gives_an_error_then_recovers(scene: Any, bpy_module: Any) -> None:
    from blender_addon import jobs

    bpy = bpy_module
    scene.atlasvae.count = 1
    bpy.ops.atlasvae.sample()
    client = jobs.backend.client
    assert client is not None
    settings = scene.atlasvae
    # 100 x 40 962 vertices (30 000 snaps up) = 4.1 M, just under the output cap: slow enough to be killed mid-way
    settings.count, settings.resolution_preset, settings.custom_resolution = 100, "CUSTOM", 30_000
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_when_busy, args=(client, killed, stop), daemon=True)
    killer.start()
    try:
        with pytest.raises(RuntimeError, match="Sample Shapes failed: backend exited with code -9"):
            bpy.ops.atlasvae.sample()
    finally:
        stop.set()
        killer.join()
    assert runtime(bpy).last_report.startswith("ERROR: Sample Shapes failed")
    settings.count, settings.resolution_preset = 1, "642"
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}
    assert jobs.backend.client is not None and jobs.backend.client.pid != killed[0]


def test_release_stop_and_restart(scene: Any, bpy_module: Any) -> None:
    from blender_addon import jobs

    bpy = bpy_module
    assert bpy.ops.atlasvae.backend_start.poll() or jobs.backend.running
    if not jobs.backend.running:
        bpy.ops.atlasvae.backend_start()
    assert jobs.backend.status()[0] == "ready"
    assert bpy.ops.atlasvae.release_memory() == {"FINISHED"}
    assert "Released the model" in runtime(bpy).last_report
    assert jobs.backend.loaded_model is None
    scene.atlasvae.count = 1
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}, "the model reloads after a release"
    pid = jobs.backend.client.pid
    assert bpy.ops.atlasvae.backend_stop() == {"FINISHED"}
    assert jobs.backend.status()[0] == "stopped" and not _alive(pid)
    with pytest.raises(RuntimeError, match="The backend is not running"):
        bpy.ops.atlasvae.release_memory()
    assert bpy.ops.atlasvae.backend_restart() == {"FINISHED"}
    assert "Backend ready on cpu, model tiny" in runtime(bpy).last_report


def test_load_model_operator(scene: Any, bpy_module: Any, models_dir: Path) -> None:
    from blender_addon import jobs

    assert bpy_module.ops.atlasvae.load_model() == {"FINISHED"}
    assert jobs.backend.loaded_model is not None
    assert Path(jobs.backend.loaded_model["path"]) == (models_dir / "tiny").resolve()


def test_disabling_the_addon_stops_the_backend(scene: Any, bpy_module: Any, user_dir: Path) -> None:
    import addon_utils

    from blender_addon import jobs

    bpy = bpy_module
    if not jobs.backend.running:
        bpy.ops.atlasvae.backend_start()
    pid = jobs.backend.client.pid
    addon_utils.disable(ADDON_MODULE, default_set=True)
    try:
        assert not _alive(pid)
    finally:
        addon_utils.enable(ADDON_MODULE, default_set=True)
        prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
        prefs.user_dir, prefs.device = str(user_dir), "cpu"


def _alive(pid: int) -> bool:
    try:
        waited, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return waited == 0


def _drain(jobs: Any) -> None:
    while jobs.pending_kinds():
        time.sleep(0.01)
        jobs.tick()


def test_async_path_applies_results_on_tick(scene: Any, bpy_module: Any) -> None:
    """Interactive mode's path (worker thread, then the timer on the main thread), driven by hand."""
    from blender_addon import jobs

    bpy = bpy_module
    applied: list[str] = []

    def apply(worker: str) -> str:
        applied.append(threading.current_thread().name)
        return f"worked on {worker}"

    task = jobs.Task("probe", "Probe", lambda task, backend: threading.current_thread().name, apply)
    assert jobs.run(task, blocking=False) is None
    assert "probe" in jobs.pending_kinds() and bpy.app.timers.is_registered(jobs.tick)
    _drain(jobs)
    main = threading.main_thread().name
    assert applied == [main]
    assert runtime(bpy).last_report.startswith("INFO: worked on atlasvae")

    errors: list[str] = []
    failing = jobs.Task("probe", "Probe", lambda task, backend: 1 / 0, apply,
                        on_error=lambda exc: errors.append(type(exc).__name__))
    jobs.run(failing, blocking=False)
    _drain(jobs)
    assert errors == ["ZeroDivisionError"] and applied == [main]
    assert runtime(bpy).last_report == "ERROR: Probe failed: division by zero"
    assert jobs.tick() is None, "the timer asks to be unregistered once idle"
    bpy.app.timers.unregister(jobs.tick)


def test_start_on_load_preference_starts_the_backend_at_register(scene: Any, bpy_module: Any) -> None:
    import addon_utils

    from blender_addon import jobs

    bpy = bpy_module
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.start_on_load = True
    try:
        addon_utils.disable(ADDON_MODULE, default_set=False)
        assert jobs.backend.client is None
        addon_utils.enable(ADDON_MODULE, default_set=False)
        prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
        assert prefs.start_on_load and prefs.device == "cpu", "preferences survive disable/enable"
        assert jobs.backend.running, jobs.backend.status()
        assert jobs.backend.loaded_model is not None and jobs.backend.loaded_model["name"] == "tiny"
    finally:
        bpy.context.preferences.addons[ADDON_MODULE].preferences.start_on_load = False
