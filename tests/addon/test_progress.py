"""Progress and Cancel on the interactive path, headless: the dispatch timer is called by hand (background
bpy never fires timers), the panel's progress bar and Cancel button are drawn through the real draw(),
and cancelling at any point leaves the scene as it was."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import add_mesh_object, made, select_only
from .test_incremental import one_step_per_call
from .ui_recorder import draw


def scene_state(bpy: Any) -> tuple[list[str], list[str], list[str]]:
    return (sorted(o.name for o in bpy.data.objects), sorted(c.name for c in bpy.data.collections),
            sorted(m.name for m in bpy.data.meshes))


def test_the_panel_shows_progress_and_cancel_while_an_action_runs(interactive: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    jobs, bpy = interactive, bpy_module
    assert bpy.ops.atlasvae.sample(count=2, seed=40) == {"FINISHED"}
    state = bpy.context.window_manager.atlasvae_runtime
    assert state.task_label == "Sample Shapes" and 0.0 <= state.task_progress <= 1.0
    drawn = draw(bpy, panels.VIEW3D_PT_atlasvae)
    assert "atlasvae.cancel" in drawn["operators"]
    assert any(text.startswith(("Sampling 2 shapes", "Adding 2 shapes")) for text in drawn["progress"]), \
        drawn["progress"]
    while jobs.pending_kinds():
        time.sleep(0.01)
        jobs.tick()
    assert state.task_label == "" and len(made(bpy)) == 2
    assert "atlasvae.cancel" not in draw(bpy, panels.VIEW3D_PT_atlasvae)["operators"]
    assert not bpy.ops.atlasvae.cancel.poll()


def test_cancel_before_the_result_arrives_adds_nothing(interactive: Any, bpy_module: Any) -> None:
    jobs, bpy = interactive, bpy_module
    before = scene_state(bpy)
    assert bpy.ops.atlasvae.sample(count=3, seed=41) == {"FINISHED"}
    assert bpy.ops.atlasvae.cancel() == {"FINISHED"}
    assert not jobs.pending_kinds()
    assert bpy.context.window_manager.atlasvae_runtime.last_report == "WARNING: Cancelled: Sample Shapes"
    time.sleep(0.5)
    for _ in range(5):
        jobs.tick()
    assert scene_state(bpy) == before and not made(bpy)
    assert bpy.ops.atlasvae.sample.poll(), "usable again at once"


def test_cancel_while_the_result_is_being_added_removes_what_was_added(interactive: Any, bpy_module: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, bpy = interactive, bpy_module
    one_step_per_call(jobs, monkeypatch)
    before = scene_state(bpy)
    assert bpy.ops.atlasvae.sample(count=4, seed=42) == {"FINISHED"}
    while not made(bpy):
        time.sleep(0.01)
        jobs.tick()
    jobs.tick()
    assert 0 < len(made(bpy)) < 4
    assert bpy.context.window_manager.atlasvae_runtime.task_progress > 0.8, "the work is done, adding has begun"
    assert bpy.ops.atlasvae.cancel() == {"FINISHED"}
    assert scene_state(bpy) == before


def test_cancel_stops_a_reconstruction_between_objects(interactive: Any, bpy_module: Any) -> None:
    jobs, bpy = interactive, bpy_module
    sources = [add_mesh_object(bpy, f"S{i}", location=(4.0 * i, 0.0, 0.0)) for i in range(4)]
    select_only(bpy, sources)
    before = scene_state(bpy)
    assert bpy.ops.atlasvae.reconstruct() == {"FINISHED"}
    task = jobs.pending()[0]
    jobs.cancel()
    assert task.future is not None
    with pytest.raises(jobs.Cancelled, match="Reconstruct cancelled"):
        task.future.result(timeout=60)
    for _ in range(3):
        jobs.tick()
    assert scene_state(bpy) == before


def test_a_missing_backend_python_is_an_error_naming_it(scene: Any, bpy_module: Any, tmp_path: Any) -> None:
    from blender_addon import jobs

    from .conftest import ADDON_MODULE

    bpy = bpy_module
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    missing = tmp_path / "no-such-env" / "bin" / "python3"
    jobs.backend.stop()
    prefs.python_path = str(missing)
    try:
        with pytest.raises(RuntimeError, match=f"Backend Python {missing} \\(set in the add-on preferences\\) "
                                               "does not exist"):
            bpy.ops.atlasvae.sample(count=1)
        report = bpy.context.window_manager.atlasvae_runtime.last_report
        assert report.startswith(f"ERROR: Sample Shapes failed: Backend Python {missing}")
        assert not made(bpy) and jobs.backend.client is None, "no other interpreter was started instead"
    finally:
        prefs.python_path = ""
