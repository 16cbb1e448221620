"""Where Blender users look (issue 28, items 1 and 5): an error carries the buttons that fix it, Esc
cancels the running action, and every job and backend control is in a menu, so F3 finds it.
The popup and the status bar need a window; the real-window tier (tests/gui) shows them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .conftest import ADDON_MODULE
from .ui_recorder import RecordingLayout, draw, new_log


def test_what_fixes_an_error(addon: Any) -> None:
    from blender_addon import feedback
    from blender_addon.bpyfree.installer import InstallError
    from blender_addon.bpyfree.locate import LocateError

    assert feedback.fix_for(LocateError("Backend Python /x does not exist")) == feedback.SETUP
    assert feedback.fix_for(InstallError("no pip")) == feedback.SETUP
    assert feedback.fix_for(RuntimeError("CUDA out of memory")) == feedback.LOG


def test_a_bad_interpreter_is_an_error_with_preferences_and_installer_buttons(
        interactive: Any, bpy_module: Any, tmp_path: Path) -> None:
    from blender_addon import feedback, panels

    jobs, bpy = interactive, bpy_module
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    missing = tmp_path / "no-env" / "bin" / "python3"
    jobs.backend.stop()
    prefs.python_path = str(missing)
    try:
        assert bpy.ops.atlasvae.sample(count=1) == {"FINISHED"}, "queued; the worker finds out"
        while jobs.pending_kinds():
            time.sleep(0.01)
            jobs.tick()
        state = bpy.context.window_manager.atlasvae_runtime
        assert state.last_report.startswith(f"ERROR: Sample Shapes failed: Backend Python {missing}")
        assert state.last_fix == feedback.SETUP
        drawn = draw(bpy, panels.VIEW3D_PT_atlasvae)
        assert ["preferences.addon_show", "atlasvae.install_backend", "atlasvae.open_log"] == \
            [op for op in drawn["operators"] if op in ("preferences.addon_show", "atlasvae.install_backend",
                                                        "atlasvae.open_log")]
        assert ("preferences.addon_show", "module", ADDON_MODULE) in drawn["operator_options"]
    finally:
        prefs.python_path = ""


def test_the_error_popup_says_what_failed_all_of_why_and_what_fixes_it(addon: Any, bpy_module: Any) -> None:
    from blender_addon import feedback

    reason = ("Backend Python /nonexistent/python3 (set in the add-on preferences) does not exist. It must be a "
              "Python interpreter with torch installed: fix the path, or clear it to let AtlasVAE search")
    log = new_log()
    feedback.draw_error(RecordingLayout(bpy_module, log), f"Sample Shapes failed: {reason}", feedback.SETUP)
    assert feedback.error_title(f"Sample Shapes failed: {reason}") == "AtlasVAE: Sample Shapes failed"
    assert " ".join(log["labels"]).split() == reason.split(), "the whole reason, wrapped, nothing cut"
    assert all(len(line) <= feedback.POPUP_WRAP for line in log["labels"])
    assert log["operators"] == ["preferences.addon_show", "atlasvae.install_backend", "atlasvae.open_log"]
    log = new_log()
    feedback.draw_error(RecordingLayout(bpy_module, log), "Reconstruct failed: out of memory", feedback.LOG)
    assert log["labels"] == ["out of memory"] and log["operators"] == ["atlasvae.open_log"]


def test_esc_runs_cancel_which_lets_esc_through_while_nothing_runs(addon: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    keymap = bpy.context.window_manager.keyconfigs.addon.keymaps["Window"]
    assert [(k.type, k.value) for k in keymap.keymap_items if k.idname == "atlasvae.cancel"] == [("ESC", "PRESS")]
    assert not bpy.ops.atlasvae.cancel.poll(), "with nothing running the Esc key goes on to Blender's own uses"


def test_jobs_and_backend_controls_are_menu_items(scene: Any, bpy_module: Any) -> None:
    from blender_addon import menus

    bpy = bpy_module
    assert "VIEW3D_MT_atlasvae_backend" in draw(bpy, menus.VIEW3D_MT_atlasvae_object)["menus"]
    items = draw(bpy, menus.VIEW3D_MT_atlasvae_backend)["operators"]
    for idname in ("atlasvae.cancel", "atlasvae.backend_stop", "atlasvae.backend_restart", "atlasvae.release_memory",
                   "atlasvae.finetune_start", "atlasvae.finetune_cancel", "atlasvae.open_log"):
        assert idname in items, idname
