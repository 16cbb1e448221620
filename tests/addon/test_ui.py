"""Sidebar panels and the dependency installer, headless.

Background bpy has no regions to draw in, so each panel's draw() runs against a recording layout
that checks every property and operator it names really exists on the registered add-on.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest


class RecordingLayout:
    """Stands in for UILayout: records labels and checks prop/operator names against bpy."""

    def __init__(self, bpy: Any, log: dict[str, list[str]]) -> None:
        self.bpy = bpy
        self.log = log
        self.enabled = True

    def row(self, **_kw: Any) -> "RecordingLayout":
        return self

    column = box = row

    def prop(self, data: Any, name: str, **_kw: Any) -> None:
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self.log["props"].append(name)

    def operator(self, idname: str, **_kw: Any) -> None:
        group, _, op = idname.partition(".")
        assert hasattr(getattr(self.bpy.ops, group), op), f"operator {idname} is not registered"
        self.log["operators"].append(idname)

    def label(self, text: str = "", **_kw: Any) -> None:
        self.log["labels"].append(text)

    def progress(self, factor: float = 0.0, type: str = "BAR", text: str = "") -> None:
        assert 0.0 <= factor <= 1.0
        self.log["progress"].append(text)


def draw(bpy: Any, panel_cls: Any) -> dict[str, list[str]]:
    log: dict[str, list[str]] = {"props": [], "operators": [], "labels": [], "progress": []}
    layout = RecordingLayout(bpy, log)

    class Host:
        def panel_layout(self) -> RecordingLayout:
            return layout

    assert panel_cls.poll(bpy.context)
    panel_cls.draw(Host(), bpy.context)
    return log


def test_every_panel_draws_with_real_names(scene: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    drawn = {cls.__name__: draw(bpy_module, cls) for cls in panels.CLASSES}
    model = drawn["VIEW3D_PT_atlasvae_model"]
    assert {"atlasvae.backend_start", "atlasvae.backend_restart", "atlasvae.release_memory",
            "atlasvae.load_model"} <= set(model["operators"])
    assert any(label.startswith("Backend: ") for label in model["labels"])
    assert any(label.startswith("Device: cpu") for label in model["labels"])
    sample = drawn["VIEW3D_PT_atlasvae_sample"]
    assert {"count", "seed", "random_seed", "temperature", "resolution_preset", "spacing"} <= set(sample["props"])
    assert "atlasvae.finetune_start" in drawn["VIEW3D_PT_atlasvae_finetune"]["operators"]


def test_custom_resolution_field_appears_only_when_chosen(scene: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    scene.atlasvae.resolution_preset = "2562"
    assert "custom_resolution" not in draw(bpy_module, panels.VIEW3D_PT_atlasvae_sample)["props"]
    scene.atlasvae.resolution_preset = "CUSTOM"
    assert "custom_resolution" in draw(bpy_module, panels.VIEW3D_PT_atlasvae_sample)["props"]


def test_finetune_progress_shows_epoch_loss_and_eta(scene: Any, bpy_module: Any) -> None:
    from blender_addon import operators, panels

    state = bpy_module.context.window_manager.atlasvae_runtime
    saved = (state.job_id, state.job_state)
    state.job_id, state.job_state = "job-7", "running"
    try:
        operators.on_notification({"method": "progress", "params": {
            "job_id": "job-7", "event": "step", "epoch": 2, "epochs": 4, "step": 5, "steps": 10,
            "loss": 0.0123, "eta_s": 125.0}})
        operators.on_notification({"method": "progress", "params": {"job_id": "other", "epoch": 4}})
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
