"""Sidebar panels, headless.

Background bpy has no regions to draw in, so each registered panel's real draw() runs with only its
`layout` stood in (ui_recorder.RecordingLayout), which checks every call against Blender's UILayout
API and every property and operator named against the registered add-on.
"""

from __future__ import annotations

from typing import Any

import pytest

from .ui_recorder import draw, draw_function


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


def test_menu_entries_in_add_mesh_object_and_context_menus(scene: Any, bpy_module: Any) -> None:
    from blender_addon import menus

    bpy = bpy_module
    hosts = {"VIEW3D_MT_mesh_add": menus.draw_mesh_add, "VIEW3D_MT_object": menus.draw_object,
             "VIEW3D_MT_object_context_menu": menus.draw_object}
    for host, fn in hosts.items():
        host_cls = getattr(bpy.types, host)
        assert fn in host_cls.draw._draw_funcs, f"AtlasVAE missing from {host}"
        assert draw_function(bpy, fn, host_cls)["menus"] in (["VIEW3D_MT_atlasvae_add"], ["VIEW3D_MT_atlasvae_object"])
    add = draw(bpy, menus.VIEW3D_MT_atlasvae_add)
    assert add["operators"] == ["atlasvae.sample", "atlasvae.sample"]
    assert add["operator_options"] == [("atlasvae.sample", "count", 1)]
    assert draw(bpy, menus.VIEW3D_MT_atlasvae_object)["operators"] == [
        "atlasvae.reconstruct", "atlasvae.variations", "atlasvae.sample"], "Interpolate needs two meshes"
    from .conftest import add_mesh_object, select_only

    select_only(bpy, [add_mesh_object(bpy, "M1"), add_mesh_object(bpy, "M2", location=(3, 0, 0))])
    assert draw(bpy, menus.VIEW3D_MT_atlasvae_object)["operators"] == [
        "atlasvae.reconstruct", "atlasvae.variations", "atlasvae.interpolate", "atlasvae.sample"]


def test_poll_messages_say_what_to_do(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    expected = {"reconstruct": "Select at least one mesh object", "interpolate": "Select exactly two mesh objects",
                "variations": "Make a mesh object active", "cancel": "Nothing is running",
                "finetune_cancel": "No fine-tune is running"}
    for name, message in expected.items():
        with pytest.raises(RuntimeError, match=message):
            getattr(bpy.ops.atlasvae, name)()


def test_a_long_error_is_shown_whole_with_the_log_button(scene: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    bpy = bpy_module
    state = bpy.context.window_manager.atlasvae_runtime
    message = ("Sample Shapes failed: backend exited with code 1 | backend log: Traceback / "
               "/home/artist/.config/blender/extensions/user_default/atlasvae/backend/serving/dispatcher.py line 377 / "
               "RuntimeError: CUDA out of memory while decoding 64 shapes at 10242 vertices")
    state.last_report, state.show_report = f"ERROR: {message}", False
    drawn = draw(bpy, panels.VIEW3D_PT_atlasvae)
    assert "".join(drawn["labels"]).replace(" ", "") == message.replace(" ", ""), "every character is shown"
    assert all(len(label) <= panels.WRAP for label in drawn["labels"])
    assert "atlasvae.open_log" in drawn["operators"]
    state.last_report = "INFO: " + message.replace("failed", "done")
    folded = draw(bpy, panels.VIEW3D_PT_atlasvae)
    assert len(folded["labels"]) == 1 and "show_report" in folded["props"], "a long note folds to one line"
    state.show_report = True
    assert len(draw(bpy, panels.VIEW3D_PT_atlasvae)["labels"]) == len(drawn["labels"])
    state.last_report, state.show_report = "", False


def test_model_section_shows_the_card_and_folder_and_log_buttons(scene: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    drawn = draw(bpy_module, panels.VIEW3D_PT_atlasvae_model)
    assert any(label.startswith("Families: ") for label in drawn["labels"])
    assert not any(label.startswith("Saved: ") for label in drawn["labels"]), "a file date is not a training date"
    assert {"atlasvae.open_folder", "atlasvae.open_log", "atlasvae.load_model"} <= set(drawn["operators"])
    assert bpy_module.ops.atlasvae.open_folder() == {"FINISHED"}


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
