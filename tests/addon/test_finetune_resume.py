"""A fine-tune that stopped early is resumed from the panel (issue 28, item 6): starting it again under the
same name goes on from its last finished epoch instead of being refused as "already exists"."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .ui_recorder import draw


def tick_until(jobs: Any, done: Any) -> None:
    while not done():
        time.sleep(0.02)
        jobs.tick()


def test_a_cancelled_finetune_resumes_under_the_same_name(interactive: Any, bpy_module: Any, mesh_folder: Path,
                                                          user_dir: Path) -> None:
    from blender_addon import panels
    from blender_addon.operators.finetune import unfinished

    jobs, bpy = interactive, bpy_module
    settings = bpy.context.scene.atlasvae
    settings.finetune_source, settings.finetune_data = "FOLDER", str(mesh_folder)
    settings.finetune_epochs, settings.finetune_name = 30, "resume-ft"
    state = bpy.context.window_manager.atlasvae_runtime
    out = user_dir / "models" / "resume-ft"
    assert bpy.ops.atlasvae.finetune_start() == {"FINISHED"}
    tick_until(jobs, lambda: state.job_state == "running" and state.epoch >= 1)
    assert bpy.ops.atlasvae.finetune_cancel() == {"FINISHED"}
    tick_until(jobs, lambda: state.job_state not in ("submitting", "running", "cancelling"))
    assert state.job_state == "cancelled", state.job_message
    assert unfinished(out), "cancelled after an epoch: an unfinished model is kept"
    stopped_at = state.epoch
    assert ("atlasvae.finetune_start", "Resume Fine-tune") in draw(bpy, panels.VIEW3D_PT_atlasvae_finetune)[
        "operator_texts"], "the panel offers to resume it"

    settings.finetune_epochs = stopped_at + 1
    assert bpy.ops.atlasvae.finetune_start() == {"FINISHED"}, "not refused as 'already exists'"
    tick_until(jobs, lambda: state.job_state not in ("submitting", "running", "cancelling"))
    assert state.job_state == "done", state.job_message
    assert not unfinished(out) and state.epoch == stopped_at + 1
    assert ("atlasvae.finetune_start", None) in draw(bpy, panels.VIEW3D_PT_atlasvae_finetune)["operator_texts"]


def test_a_finetune_of_the_selection_resumes_on_the_same_exported_meshes(interactive: Any, bpy_module: Any,
                                                                        user_dir: Path) -> None:
    """Scene objects are exported to the user folder's finetune-data/NAME (not a temporary folder), so the
    stopped run, which recorded that folder, resumes on it from the panel's list even with nothing selected."""
    from blender_addon import panels

    from .conftest import add_mesh_object, select_only

    jobs, bpy = interactive, bpy_module
    objs = [add_mesh_object(bpy, f"Rock{i}", kind, location=(3.0 * i, 0.0, 0.0))
            for i, kind in enumerate(["cube", "monkey", "cone", "uv_sphere"] * 2)]
    select_only(bpy, objs)
    state = bpy.context.window_manager.atlasvae_runtime
    assert bpy.ops.atlasvae.finetune_start(source="SELECTED", epochs=40, name="scene-ft") == {"FINISHED"}
    tick_until(jobs, lambda: state.job_state == "running" and state.epoch >= 1)
    exported = user_dir / "finetune-data" / "scene-ft"
    assert sorted(p.name for p in exported.rglob("*.obj")) == sorted(f"{o.name}.obj" for o in objs)
    assert bpy.ops.atlasvae.finetune_cancel() == {"FINISHED"}
    tick_until(jobs, lambda: not state.job_running())
    assert state.job_state == "cancelled", state.job_message
    assert exported.is_dir(), "kept for the resume"
    stopped_at = state.epoch

    drawn = draw(bpy, panels.VIEW3D_PT_atlasvae_finetune)
    assert f"scene-ft: epoch {stopped_at}/40" in drawn["labels"], drawn["labels"]
    assert ("atlasvae.finetune_start", "Resume") in drawn["operator_texts"]
    assert ("atlasvae.finetune_start", "name", "scene-ft") in drawn["operator_options"]
    select_only(bpy, [])
    assert bpy.ops.atlasvae.finetune_start(name="scene-ft", epochs=stopped_at + 1) == {"FINISHED"}, \
        "the list's Resume: the run's own data, whatever is selected now"
    tick_until(jobs, lambda: not state.job_running())
    assert state.job_state == "done", state.job_message
    assert state.epoch == stopped_at + 1
    assert not exported.exists(), "a finished fine-tune's export is removed"
    assert not any(label.startswith("scene-ft:") for label in draw(bpy, panels.VIEW3D_PT_atlasvae_finetune)["labels"])


def test_a_run_is_unfinished_by_its_train_state(tmp_path: Path) -> None:
    from backend.training.output import STATE_JSON
    from blender_addon.bpyfree import locate

    assert locate.RUN_STATE_FILE == STATE_JSON
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / STATE_JSON).write_text('{"epoch": 0, "finished": false, "config": {"epochs": 7}}')
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / STATE_JSON).write_text('{"epoch": 7, "finished": true}')
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / STATE_JSON).write_text("not json")
    assert [folder.name for folder, _state in locate.unfinished_runs(tmp_path)] == ["a"]
