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
