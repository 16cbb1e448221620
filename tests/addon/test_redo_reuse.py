"""F9 that changes only how results look rebuilds them from the last answer without asking the backend
again (issue 28, item 2): a task that names its content and asks to reuse gets the last result of its
kind when the content is equal, and new work otherwise."""

from __future__ import annotations

from typing import Any


def test_equal_content_reuses_the_last_result_only_when_asked(addon: Any) -> None:
    from blender_addon import jobs

    calls: list[int] = []

    def task(content: Any, reuse: bool) -> jobs.Task:
        def work(_task: jobs.Task, _backend: Any) -> int:
            calls.append(1)
            return len(calls)

        return jobs.Task("reuse-test", "Reuse test", work, lambda n: f"result {n}", content=content, reuse=reuse)

    assert jobs.run(task(("model", 4, 0), reuse=False), blocking=True) == "result 1"
    assert jobs.run(task(("model", 4, 0), reuse=True), blocking=True) == "result 1", "F9, same content: no work"
    assert jobs.run(task(("model", 6, 0), reuse=True), blocking=True) == "result 2", "other content: new work"
    assert jobs.run(task(("model", 6, 0), reuse=False), blocking=True) == "result 3", "a new click asks again"
    assert jobs.run(task(None, reuse=True), blocking=True) == "result 4", "no content named: never reused"
    assert len(calls) == 4


def test_sample_and_reconstruct_name_their_content(scene: Any, bpy_module: Any) -> None:
    from blender_addon import jobs

    from .conftest import add_mesh_object, select_only

    bpy = bpy_module
    assert bpy.ops.atlasvae.sample(count=2, seed=4) == {"FINISHED"}
    content, _result = jobs._last_result["sample"]
    assert content is not None and ("seed", 4) in content[1] and ("count", 2) in content[1]
    select_only(bpy, [add_mesh_object(bpy, "Src", "cube")])
    assert bpy.ops.atlasvae.reconstruct(fit="encoder") == {"FINISHED"}
    content, _result = jobs._last_result["reconstruct"]
    assert ("fit", "encoder") in content[1] and content[2][0][0] == "Src"


class RedoCall:
    """Stands in for what Blender hands execute() when it re-runs an operator from Adjust Last Operation
    (F9): options.is_repeat set, and report() (the only other part of the operator dispatch uses)."""

    def __init__(self, is_repeat: bool = True) -> None:
        self.options = type("Options", (), {"is_repeat": is_repeat})()
        self.reports: list[tuple[set[str], str]] = []

    def report(self, level: set[str], text: str) -> None:
        self.reports.append((level, text))


def gated_task(jobs: Any, gate: Any, content: Any, made: list[str], worked: list[Any]) -> Any:
    """A task whose backend work waits for `gate` and whose apply records its content in `made`."""
    def work(_task: Any, _backend: Any) -> Any:
        worked.append(content)
        gate.wait(10)
        return content

    def apply(result: Any) -> str:
        made.append(result)
        return f"made {result}"

    return jobs.Task("redo-test", "Redo test", work, apply, content=content, reuse=True)


def test_f9_with_new_content_returns_at_once_and_replaces_the_run_under_way(interactive: Any) -> None:
    import threading
    import time

    from blender_addon.operators.common import dispatch

    jobs = interactive
    gate, made, worked = threading.Event(), [], []
    assert dispatch(RedoCall(False), gated_task(jobs, gate, ("count", 4), made, worked), "q") == {"FINISHED"}
    assert dispatch(RedoCall(False), gated_task(jobs, gate, ("count", 5), made, worked), "q") == {"CANCELLED"}, \
        "a plain second run of a kind under way is refused"
    started = time.perf_counter()
    assert dispatch(RedoCall(), gated_task(jobs, gate, ("count", 6), made, worked), "q") == {"FINISHED"}
    assert time.perf_counter() - started < 0.5, "F9 returns without waiting for the backend"
    assert [t.content for t in jobs.pending()] == [("count", 6)], "the earlier run was replaced"
    gate.set()
    while jobs.pending():
        time.sleep(0.01)
        jobs.tick()
    assert made == [("count", 6)], "the replaced run's answer is never applied"


def test_f9_with_the_same_content_rebuilds_from_the_last_answer_at_once(interactive: Any) -> None:
    import threading
    import time

    from blender_addon.operators.common import dispatch

    jobs = interactive
    gate, made, worked = threading.Event(), [], []
    gate.set()
    assert dispatch(RedoCall(False), gated_task(jobs, gate, ("count", 4), made, worked), "q") == {"FINISHED"}
    while jobs.pending():
        time.sleep(0.01)
        jobs.tick()
    call = RedoCall()
    assert dispatch(call, gated_task(jobs, gate, ("count", 4), made, worked), "q") == {"FINISHED"}
    assert not jobs.pending() and made == [("count", 4), ("count", 4)], "applied before dispatch returned"
    assert worked == [("count", 4)], "no second backend request"
    assert call.reports == [({"INFO"}, "made ('count', 4)")]


def test_esc_cancels_an_f9_run_under_way(interactive: Any, bpy_module: Any) -> None:
    import threading

    from blender_addon.operators.common import dispatch

    jobs, bpy = interactive, bpy_module
    gate, made, worked = threading.Event(), [], []
    assert dispatch(RedoCall(), gated_task(jobs, gate, ("count", 8), made, worked), "q") == {"FINISHED"}
    assert bpy.ops.atlasvae.cancel.poll(), "Esc's operator is live while the F9 run is under way"
    assert bpy.ops.atlasvae.cancel() == {"FINISHED"}
    gate.set()
    for _ in range(5):
        jobs.tick()
    assert not jobs.pending() and made == []
