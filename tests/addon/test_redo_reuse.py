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
