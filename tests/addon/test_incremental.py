"""Big results applied in steps on the interactive path, headless: the dispatch timer (called by hand,
since background bpy never fires timers) adds a few objects per call, stops once its budget is
spent, records one undo step at the end, and rolls a result back when it cannot be finished.

Work per call is counted in objects read back from bpy.data, and the budget is measured on a stand-in
clock that each new object advances by a fixed amount, so nothing here depends on how fast the machine
is. Nothing of the add-on is replaced: only the clock (the OS's) and bpy.app (see conftest.interactive)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from .conftest import made

TETRA = (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32),
         np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int32))


def wait_for_first_object(jobs: Any, bpy: Any) -> None:
    """Tick (as Blender would, every few ms) until the worker's result has started to be applied."""
    while not made(bpy):
        assert jobs.pending_kinds(), "the request ended before making any object"
        time.sleep(0.01)
        jobs.tick()


def objects_per_call(jobs: Any, bpy: Any) -> list[int]:
    """Objects made by each timer call from the first that made one until nothing is pending."""
    wait_for_first_object(jobs, bpy)
    counts = [len(made(bpy))]
    while jobs.pending_kinds():
        before = len(made(bpy))
        jobs.tick()
        counts.append(len(made(bpy)) - before)
    return counts


def one_step_per_call(jobs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock on which every read is a second later: each timer call's budget is spent after one step."""
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    monkeypatch.setattr(jobs, "clock", clock)


def sample(bpy: Any, count: int, seed: int) -> None:
    settings = bpy.context.scene.atlasvae
    settings.count, settings.seed = count, seed
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}


def test_one_object_per_call_then_one_undo_step(interactive: Any, bpy_module: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, bpy = interactive, bpy_module
    one_step_per_call(jobs, monkeypatch)
    bpy.ops.ed.undo_push(message="before sampling")
    sample(bpy, 6, 31)
    state = bpy.context.window_manager.atlasvae_runtime
    wait_for_first_object(jobs, bpy)
    assert len(made(bpy)) == 1
    assert "sample" in jobs.pending_kinds()
    assert state.last_report == "INFO: Sampling 6 shapes (seed 31)...", "no final message before the end"
    assert bpy.ops.atlasvae.sample() == {"CANCELLED"}, "a second run is refused until this one is applied"
    assert state.last_report.startswith("WARNING: Sample Shapes is already under way")
    counts = [1]
    while jobs.pending_kinds():
        before = len(made(bpy))
        interval = jobs.tick()
        counts.append(len(made(bpy)) - before)
        if jobs.pending_kinds():
            assert interval == jobs.APPLY_INTERVAL_S, "the timer comes back soon while applying"
    assert counts == [1, 1, 1, 1, 1, 1, 0], "one object per call; the last call ends the build"
    collection = bpy.data.collections["AtlasVAE Samples tiny seed 31"]
    assert sorted(o.name for o in collection.objects) == [f"tiny_s31_{i}" for i in range(6)]
    assert state.last_report.startswith("INFO: Sampled 6 shapes from tiny (seed 31)")
    assert jobs.tick() is None
    bpy.ops.ed.undo()
    assert not made(bpy), "ONE undo removes all six: the step was recorded after the last object"
    assert "AtlasVAE Samples tiny seed 31" not in bpy.data.collections


def test_a_call_stops_adding_once_its_budget_is_spent(interactive: Any, bpy_module: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, bpy = interactive, bpy_module
    monkeypatch.setattr(jobs, "clock", lambda: 0.010 * len(bpy.data.objects))  # 10 ms per object made
    sample(bpy, 8, 32)
    assert jobs.APPLY_BUDGET_S == pytest.approx(0.025)
    assert objects_per_call(jobs, bpy) == [3, 3, 2], "no step starts after 25 ms: at most 3 objects a call"
    assert len(bpy.data.collections["AtlasVAE Samples tiny seed 32"].objects) == 8


def test_reconstruct_many_objects_is_spread_over_calls(interactive: Any, bpy_module: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import add_mesh_object, select_only

    jobs, bpy = interactive, bpy_module
    sources = [add_mesh_object(bpy, f"src{i}", "cube", location=(3.0 * i, 0.0, 0.0)) for i in range(3)]
    select_only(bpy, sources)
    one_step_per_call(jobs, monkeypatch)
    bpy.ops.ed.undo_push(message="sources")
    assert bpy.ops.atlasvae.reconstruct() == {"FINISHED"}
    assert objects_per_call(jobs, bpy) == [1, 1, 1, 0]
    assert sorted(o.name for o in made(bpy)) == ["src0_recon", "src1_recon", "src2_recon"]
    bpy.ops.ed.undo()
    assert not made(bpy) and len(bpy.data.objects) == 3, "one undo step for the three results"


def test_dropping_a_half_applied_result_removes_what_it_built(interactive: Any, bpy_module: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, bpy = interactive, bpy_module
    meshes_before = len(bpy.data.meshes)
    one_step_per_call(jobs, monkeypatch)
    sample(bpy, 5, 33)
    wait_for_first_object(jobs, bpy)
    jobs.tick()
    assert len(made(bpy)) == 2 and "AtlasVAE Samples tiny seed 33" in bpy.data.collections
    jobs.drop_pending()  # what unregister does (jobs.shutdown) while a result is half applied
    assert not jobs.pending_kinds()
    assert not made(bpy) and "AtlasVAE Samples tiny seed 33" not in bpy.data.collections
    assert len(bpy.data.meshes) == meshes_before, "the meshes of the removed objects go too"


def test_a_bad_mesh_mid_result_rolls_back_with_a_clear_error(interactive: Any, bpy_module: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """build_objects given a result whose third mesh is broken (as a faulty backend could send)."""
    from blender_addon.operators.building import NewObject, build_objects, destination

    jobs, bpy = interactive, bpy_module
    one_step_per_call(jobs, monkeypatch)
    vertices, faces = TETRA
    items = [NewObject(f"t{i}", vertices, faces + 1000 if i == 2 else faces, np.eye(4), {"model": "test"})
             for i in range(4)]
    dest = destination(bpy.context)
    task = jobs.Task("probe", "Probe", lambda task, backend: items,
                     lambda result: build_objects(dest, result, "AtlasVAE: Probe", new_collection="Probe batch"))
    assert jobs.run(task, blocking=False) is None
    assert objects_per_call(jobs, bpy) == [1, 1, -2]
    report = bpy.context.window_manager.atlasvae_runtime.last_report
    assert report.startswith("ERROR: Probe failed: Mesh 't2': face indices outside 0..3")
    assert not made(bpy) and "Probe batch" not in bpy.data.collections
    assert not any(m.name.startswith("t") for m in bpy.data.meshes), "no mesh left behind"
    assert bpy.ops.atlasvae.sample.poll(), "the operators are usable again"


def test_an_object_failing_after_it_was_linked_leaves_nothing_behind(interactive: Any, bpy_module: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The third object fails after it is in the scene (a shape key of the wrong length, which Blender
    refuses): that object, its mesh and the ones before it all go, without a new collection too."""
    from blender_addon.operators.building import NewObject, build_objects, destination

    jobs, bpy = interactive, bpy_module
    one_step_per_call(jobs, monkeypatch)
    vertices, faces = TETRA
    items = [NewObject(f"k{i}", vertices, faces, np.eye(4), {"model": "test"},
                       shape_keys=[("Step", vertices[:3] if i == 2 else vertices)]) for i in range(4)]
    dest = destination(bpy.context)
    task = jobs.Task("probe", "Probe", lambda task, backend: items,
                     lambda result: build_objects(dest, result, "AtlasVAE: Probe"))
    assert jobs.run(task, blocking=False) is None
    objects_per_call(jobs, bpy)
    assert bpy.context.window_manager.atlasvae_runtime.last_report.startswith("ERROR: Probe failed")
    assert not made(bpy) and not any(o.name.startswith("k") for o in bpy.data.objects)
    assert not any(m.name.startswith("k") for m in bpy.data.meshes), "no mesh left behind"


def test_a_collection_removed_between_calls_stops_the_build(interactive: Any, bpy_module: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, bpy = interactive, bpy_module
    one_step_per_call(jobs, monkeypatch)
    sample(bpy, 5, 35)
    wait_for_first_object(jobs, bpy)
    jobs.tick()
    assert len(made(bpy)) == 2
    bpy.data.collections.remove(bpy.data.collections["AtlasVAE Samples tiny seed 35"])
    while jobs.pending_kinds():
        jobs.tick()
    report = bpy.context.window_manager.atlasvae_runtime.last_report
    assert report == ("ERROR: Sample Shapes failed: collection 'AtlasVAE Samples tiny seed 35' was removed "
                      "(undo or another file loaded) after 2 of 5 objects were added")
    assert not [o for o in bpy.data.objects if o.name.startswith("tiny_s35")], "its objects go with it"


def test_background_mode_builds_everything_before_returning(scene: Any, bpy_module: Any) -> None:
    from blender_addon import jobs

    bpy = bpy_module
    bpy.ops.ed.undo_push(message="before")
    sample(bpy, 4, 36)
    assert not jobs.pending_kinds()
    objs = sorted(bpy.data.collections["AtlasVAE Samples tiny seed 36"].objects, key=lambda o: o.name)
    assert [o.name for o in objs] == [f"tiny_s36_{i}" for i in range(4)]
    assert all(np.isfinite(np.array(o.location)).all() for o in objs)
    bpy.ops.ed.undo()
    assert not made(bpy), "one undo step for the whole batch"
