# mypy: disable-error-code="valid-type"
"""Per-session runtime state shown in the UI (WindowManager.atlasvae_runtime): the last report, the
running action's progress, fine-tune progress and the installer's output; never saved nor undone.

A leaf module (it imports only bpy), so jobs, preferences and properties can all use it without
importing each other.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, PointerProperty, StringProperty


class AtlasVAERuntime(bpy.types.PropertyGroup):
    """Session state shown in the UI: last report, action and fine-tune progress (not saved, not undone)."""

    last_report: StringProperty(name="Last Report", options={"SKIP_SAVE"})
    last_fix: StringProperty(name="Fix", description="What fixes the last error (feedback.SETUP or LOG)",
                             options={"SKIP_SAVE"})
    show_families: BoolProperty(name="Show Families", description="List every family the model can sample",
                                default=False, options={"SKIP_SAVE"})
    show_report: BoolProperty(name="Show Full Message", description="Show the whole last message",
                              default=False, options={"SKIP_SAVE"})
    task_label: StringProperty(name="Working On", options={"SKIP_SAVE"})
    task_text: StringProperty(name="Task Progress Text", options={"SKIP_SAVE"})
    task_progress: FloatProperty(name="Task Progress", min=0.0, max=1.0, options={"SKIP_SAVE"}, subtype="FACTOR")
    job_id: StringProperty(name="Job", options={"SKIP_SAVE"})
    job_state: StringProperty(name="Job State", options={"SKIP_SAVE"})
    job_out: StringProperty(name="Output", options={"SKIP_SAVE"})
    epoch: IntProperty(name="Epoch", options={"SKIP_SAVE"})
    epochs: IntProperty(name="Epochs", options={"SKIP_SAVE"})
    loss: FloatProperty(name="Loss", options={"SKIP_SAVE"})
    eta_s: FloatProperty(name="ETA (s)", options={"SKIP_SAVE"})
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, options={"SKIP_SAVE"}, subtype="FACTOR")
    job_message: StringProperty(name="Message", options={"SKIP_SAVE"})
    install_running: BoolProperty(name="Installing", options={"SKIP_SAVE"})
    install_line: StringProperty(name="Install Output", options={"SKIP_SAVE"})
    install_phase: StringProperty(name="Install Step", options={"SKIP_SAVE"})
    install_progress: FloatProperty(name="Install Progress", min=0.0, max=1.0, options={"SKIP_SAVE"},
                                    subtype="FACTOR")

    def job_running(self) -> bool:
        """True while a fine-tune job is submitted or running."""
        return self.job_state in ("submitting", "running", "cancelling")


def runtime() -> AtlasVAERuntime | None:
    """Session runtime state (None before registration)."""
    wm = bpy.context.window_manager
    return getattr(wm, "atlasvae_runtime", None) if wm is not None else None


def note(level: str, message: str, fix: str = "") -> None:
    """Keep `message` as the last report the panel shows (in full, in its message box), and for an error
    what fixes it (its buttons are drawn below it)."""
    state = runtime()
    if state is not None:
        state.last_report = f"{level}: {message}"
        state.last_fix = fix


def register() -> None:
    bpy.utils.register_class(AtlasVAERuntime)
    bpy.types.WindowManager.atlasvae_runtime = PointerProperty(type=AtlasVAERuntime)  # type: ignore[attr-defined]


def unregister() -> None:
    del bpy.types.WindowManager.atlasvae_runtime  # type: ignore[attr-defined]
    bpy.utils.unregister_class(AtlasVAERuntime)
