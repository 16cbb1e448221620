"""Sidebar panels and the dependency installer, headless.

Background bpy has no regions to draw in, so each registered panel's real draw() runs with only its
`layout` stood in (ui_recorder.RecordingLayout), which checks every call against Blender's UILayout
API and every property and operator named against the registered add-on.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from .ui_recorder import draw


def test_every_panel_draws_with_real_names(scene: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    drawn = {cls.__name__: draw(bpy_module, cls) for cls in panels.CLASSES}
    top = drawn["VIEW3D_PT_atlasvae"]
    assert "model" in top["props"] and {"atlasvae.sample", "atlasvae.reconstruct"} <= set(top["operators"])
    model = drawn["VIEW3D_PT_atlasvae_model"]
    assert {"atlasvae.backend_start", "atlasvae.backend_restart", "atlasvae.release_memory",
            "atlasvae.load_model"} <= set(model["operators"])
    assert any(label.startswith("Backend: ") for label in model["labels"])
    assert any(label.startswith("Device: cpu") for label in model["labels"])
    sample = drawn["VIEW3D_PT_atlasvae_sample"]
    assert {"count", "seed", "random_seed", "temperature", "resolution_preset", "spacing"} <= set(sample["props"])
    assert "atlasvae.finetune_start" in drawn["VIEW3D_PT_atlasvae_finetune"]["operators"]


def test_sections_are_sub_panels_of_one_registered_parent(scene: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    parent, *sections = panels.CLASSES
    assert getattr(bpy_module.types, parent.bl_idname) is parent and not getattr(parent, "bl_parent_id", "")
    assert sections and all(cls.bl_parent_id == parent.bl_idname for cls in sections)
    assert all(getattr(bpy_module.types, cls.bl_idname) is cls for cls in sections)


def test_the_recorder_refuses_what_uilayout_lacks(scene: Any, bpy_module: Any) -> None:
    from .ui_recorder import RecordingLayout, new_log

    layout = RecordingLayout(bpy_module, new_log())
    with pytest.raises(AssertionError, match="has no property 'no_such'"):
        layout.row().prop(scene.atlasvae, "no_such")
    with pytest.raises(AssertionError, match="atlasvae.no_such is not registered"):
        layout.box().operator("atlasvae.no_such")
    with pytest.raises(AssertionError, match="no function 'lable'"):
        layout.lable(text="typo")
    with pytest.raises(AssertionError, match="unknown icon"):
        layout.label(text="x", icon="NO_SUCH_ICON")
    with pytest.raises(AssertionError, match="has no option 'no_such'"):
        layout.operator("atlasvae.sample").no_such = 1


def test_custom_resolution_field_appears_only_when_chosen(scene: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    scene.atlasvae.resolution_preset = "2562"
    assert "custom_resolution" not in draw(bpy_module, panels.VIEW3D_PT_atlasvae_sample)["props"]
    scene.atlasvae.resolution_preset = "CUSTOM"
    assert "custom_resolution" in draw(bpy_module, panels.VIEW3D_PT_atlasvae_sample)["props"]


def test_finetune_progress_shows_epoch_loss_and_eta(scene: Any, bpy_module: Any) -> None:
    from blender_addon import panels
    from blender_addon.operators import finetune

    state = bpy_module.context.window_manager.atlasvae_runtime
    saved = (state.job_id, state.job_state)
    state.job_id, state.job_state = "job-7", "running"
    try:
        finetune.on_notification({"method": "progress", "params": {
            "job_id": "job-7", "event": "step", "epoch": 2, "epochs": 4, "step": 5, "steps": 10,
            "loss": 0.0123, "eta_s": 125.0}})
        finetune.on_notification({"method": "progress", "params": {"job_id": "other", "epoch": 4}})
        assert (state.epoch, state.epochs) == (2, 4)
        assert state.progress == pytest.approx(1.5 / 4)
        texts = draw(bpy_module, panels.VIEW3D_PT_atlasvae_finetune)["progress"]
        assert texts == ["running: epoch 2/4, loss 0.0123, ETA 2:05"]
    finally:
        state.job_id, state.job_state = saved


def test_installer_streams_lines_and_stops_at_the_first_failure() -> None:
    from blender_addon.preferences import _Installer

    installer = _Installer()
    ok, message = installer.run([[sys.executable, "-c", "print('step one'); print('step two')"],
                                 [sys.executable, "-c", "import sys; print('broken wheel'); sys.exit(3)"],
                                 [sys.executable, "-c", "print('never runs')"]])
    lines = []
    while not installer.lines.empty():
        lines.append(installer.lines.get_nowait())
    assert not ok
    assert "exit status 3" in message and "broken wheel" in message
    assert "step one" in lines and "step two" in lines and "never runs" not in lines
    assert installer.run([[sys.executable, "-c", "print('fine')"]]) == (True, "Backend environment installed")


def test_installer_names_a_missing_program() -> None:
    from blender_addon.preferences import _Installer

    ok, message = _Installer().run([["/nonexistent/python", "-m", "venv", "x"]])
    assert not ok and message.startswith("Cannot run /nonexistent/python")
