"""Big results applied in steps on the interactive path, headless: the dispatch timer (called by hand,
since background bpy never fires timers) adds a few objects per call, stops once its budget is
spent, records one undo step at the end, and rolls a result back when it cannot be finished.

Work per call is counted in meshes, and the budget is measured on a fake clock that a mesh advances
by a fixed amount, so nothing here depends on how fast the machine is."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pytest


class Counter:
    """Wraps building.arrays_to_mesh and jobs.undo_push: meshes made so far, and at which mesh
    count each undo step was recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, mesh_cost: Callable[[], None] = lambda: None,
                 faces_for: Callable[[int, Any], Any] = lambda i, faces: faces) -> None:
        from blender_addon import jobs
        from blender_addon.operators import building

        self.meshes = 0
        self.undo: list[tuple[int, str]] = []
        real_mesh, real_undo = building.arrays_to_mesh, jobs.undo_push

        def mesh(name: str, vertices: Any, faces: Any) -> Any:
            made = real_mesh(name, vertices, faces_for(self.meshes, faces))
            self.meshes += 1
            mesh_cost()
            return made

        def undo(message: str) -> None:
            self.undo.append((self.meshes, message))
            real_undo(message)

        monkeypatch.setattr(building, "arrays_to_mesh", mesh)
        monkeypatch.setattr(jobs, "undo_push", undo)


def wait_for_first_mesh(jobs: Any, counter: Counter) -> None:
    """Tick (as Blender would, every few ms) until the worker's result has started to be applied."""
    while counter.meshes == 0:
        assert jobs.pending_kinds(), "the request ended before making any object"
        time.sleep(0.01)
        jobs.tick()


def meshes_per_call(jobs: Any, counter: Counter) -> list[int]:
    """Meshes made by each timer call from the first that made one until nothing is pending."""
    wait_for_first_mesh(jobs, counter)
    counts = [counter.meshes]
    while jobs.pending_kinds():
        before = counter.meshes
        jobs.tick()
        counts.append(counter.meshes - before)
    return counts


def sample(bpy: Any, count: int, seed: int) -> None:
    settings = bpy.context.scene.atlasvae
    settings.count, settings.seed = count, seed
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}


def made_objects(bpy: Any) -> list[Any]:
    return [o for o in bpy.data.objects if "atlasvae_model" in o]


def test_one_object_per_call_then_one_undo_step(interactive: Any, bpy_module: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, bpy = interactive, bpy_module
    monkeypatch.setattr(jobs, "APPLY_BUDGET_S", 0.0)  # every call stops after its first step
    counter = Counter(monkeypatch)
    bpy.ops.ed.undo_push(message="before sampling")
    sample(bpy, 6, 31)
    state = bpy.context.window_manager.atlasvae_runtime
    wait_for_first_mesh(jobs, counter)
    assert counter.meshes == 1
    assert "sample" in jobs.pending_kinds() and not bpy.ops.atlasvae.sample.poll(), "greyed out until applied"
    assert state.last_report == "INFO: Sampling 6 shapes (seed 31)...", "no final message before the end"
    assert counter.undo == []
    counts = [1]
    while jobs.pending_kinds():
        before = counter.meshes
        interval = jobs.tick()
        counts.append(counter.meshes - before)
        if jobs.pending_kinds():
            assert interval == jobs.APPLY_INTERVAL_S, "the timer comes back soon while applying"
    assert counts == [1, 1, 1, 1, 1, 1, 0], "one mesh per call; the undo step gets a call of its own"
    assert counter.undo == [(6, "AtlasVAE: Sample Shapes")], "exactly one undo step, after the last object"
    collection = bpy.data.collections["AtlasVAE Samples tiny seed 31"]
    assert sorted(o.name for o in collection.objects) == [f"tiny_s31_{i}" for i in range(6)]
    assert state.last_report.startswith("INFO: Sampled 6 shapes from tiny (seed 31)")
    assert jobs.tick() is None
    bpy.ops.ed.undo()
    assert "AtlasVAE Samples tiny seed 31" not in bpy.data.collections, "one undo removes the whole result"
    assert not made_objects(bpy)


def test_a_call_stops_adding_once_its_budget_is_spent(interactive: Any, bpy_module: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, bpy = interactive, bpy_module
    now = [0.0]
    monkeypatch.setattr(jobs, "clock", lambda: now[0])

    def cost() -> None:
        now[0] += 0.010  # every mesh takes 10 ms of the fake clock against the default 25 ms budget

    counter = Counter(monkeypatch, mesh_cost=cost)
    sample(bpy, 8, 32)
    assert jobs.APPLY_BUDGET_S == pytest.approx(0.025)
    assert meshes_per_call(jobs, counter) == [3, 3, 2], "no step starts after 25 ms: at most 3 meshes a call"
    assert len(bpy.data.collections["AtlasVAE Samples tiny seed 32"].objects) == 8
    assert [m for m, _ in counter.undo] == [8]


def test_reconstruct_many_objects_is_spread_over_calls(interactive: Any, bpy_module: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import add_mesh_object, select_only

    jobs, bpy = interactive, bpy_module
    sources = [add_mesh_object(bpy, f"src{i}", "cube", location=(3.0 * i, 0.0, 0.0)) for i in range(3)]
    select_only(bpy, sources)
    monkeypatch.setattr(jobs, "APPLY_BUDGET_S", 0.0)
    counter = Counter(monkeypatch)
    assert bpy.ops.atlasvae.reconstruct() == {"FINISHED"}
    assert meshes_per_call(jobs, counter) == [1, 1, 1, 0]
    assert sorted(o.name for o in made_objects(bpy)) == ["src0_recon", "src1_recon", "src2_recon"]
    assert [m for m, _ in counter.undo] == [3]


def test_dropping_a_half_applied_result_removes_what_it_built(interactive: Any, bpy_module: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, bpy = interactive, bpy_module
    meshes_before = len(bpy.data.meshes)
    monkeypatch.setattr(jobs, "APPLY_BUDGET_S", 0.0)
    counter = Counter(monkeypatch)
    sample(bpy, 5, 33)
    wait_for_first_mesh(jobs, counter)
    jobs.tick()
    assert len(made_objects(bpy)) == 2 and "AtlasVAE Samples tiny seed 33" in bpy.data.collections
    jobs.drop_pending()  # what unregister does (jobs.shutdown) while a result is half applied
    assert not jobs.pending_kinds()
    assert not made_objects(bpy) and "AtlasVAE Samples tiny seed 33" not in bpy.data.collections
    assert len(bpy.data.meshes) == meshes_before, "the meshes of the removed objects go too"
    assert counter.undo == []


def test_a_bad_mesh_mid_result_rolls_back_with_a_clear_error(interactive: Any, bpy_module: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, bpy = interactive, bpy_module
    monkeypatch.setattr(jobs, "APPLY_BUDGET_S", 0.0)
    counter = Counter(monkeypatch, faces_for=lambda i, faces: faces + 1000 if i == 2 else faces)
    sample(bpy, 4, 34)
    assert meshes_per_call(jobs, counter) == [1, 1, 0]
    report = bpy.context.window_manager.atlasvae_runtime.last_report
    assert report.startswith("ERROR: Sample Shapes failed: Mesh 'tiny_s34_2': face indices outside 0..641")
    assert not made_objects(bpy) and "AtlasVAE Samples tiny seed 34" not in bpy.data.collections
    assert counter.undo == []
    assert bpy.ops.atlasvae.sample.poll(), "the operator is usable again"


def test_a_collection_removed_between_calls_stops_the_build(interactive: Any, bpy_module: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, bpy = interactive, bpy_module
    monkeypatch.setattr(jobs, "APPLY_BUDGET_S", 0.0)
    counter = Counter(monkeypatch)
    sample(bpy, 5, 35)
    wait_for_first_mesh(jobs, counter)
    jobs.tick()
    bpy.data.collections.remove(bpy.data.collections["AtlasVAE Samples tiny seed 35"])
    while jobs.pending_kinds():
        jobs.tick()
    report = bpy.context.window_manager.atlasvae_runtime.last_report
    assert report == ("ERROR: Sample Shapes failed: collection 'AtlasVAE Samples tiny seed 35' was removed "
                      "(undo or another file loaded) after 2 of 5 objects were added")
    assert not made_objects(bpy), "the objects it had added are removed with it"
    assert counter.meshes == 2 and counter.undo == []


def test_blocking_mode_builds_everything_before_returning(scene: Any, bpy_module: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from blender_addon import jobs

    bpy = bpy_module
    monkeypatch.setattr(jobs, "blocking_default", lambda: True)
    monkeypatch.setattr(jobs, "APPLY_BUDGET_S", 0.0)
    counter = Counter(monkeypatch)
    sample(bpy, 4, 36)
    assert counter.meshes == 4 and [m for m, _ in counter.undo] == [4]
    assert not jobs.pending_kinds()
    objs = sorted(bpy.data.collections["AtlasVAE Samples tiny seed 36"].objects, key=lambda o: o.name)
    assert [o.name for o in objs] == [f"tiny_s36_{i}" for i in range(4)]
    assert all(np.isfinite(np.array(o.location)).all() for o in objs)
