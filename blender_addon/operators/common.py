"""What every AtlasVAE operator shares: how the backend is launched, how a task is dispatched and
reported, the selection helpers, and options that default to the sidebar's last values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import bpy

from .. import jobs
from ..bpyfree.backend_process import LaunchConfig, error_text
from ..preferences import AddonSettings, addon_settings
from ..properties import AtlasVAESettings, model_entries, models_dirs, settings
from ..runtime import note

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

PanelDefault = Callable[[AtlasVAESettings], Any]
OPTION = {"SKIP_SAVE"}  # options are not remembered between calls: the sidebar's values are the defaults


def launch_config(scene_settings: AtlasVAESettings | None, prefs: AddonSettings | None = None) -> LaunchConfig:
    """What to start the backend with: preferences plus the scene's chosen model."""
    prefs = prefs or addon_settings()
    model_path = scene_settings.model_path() if scene_settings is not None else None
    if model_path is None:
        entries = model_entries()
        model_path = str(entries[0].path) if entries else None
    return LaunchConfig(python_preference=prefs.python_path, user_dir=prefs.user_dir, device=prefs.device,
                        model_path=model_path, models_dirs=models_dirs())


def fail(op: bpy.types.Operator, message: str) -> set[OperatorReturnItems]:
    """Report an error with its real, whole text and cancel."""
    note("ERROR", message)
    op.report({"ERROR"}, message)
    return {"CANCELLED"}


def dispatch(op: bpy.types.Operator, task: jobs.Task, queued: str) -> set[OperatorReturnItems]:
    """Run `task` and report its outcome: at once in background mode, and for Blender's Adjust Last Operation
    (F9) when only how results look changed (the last answer is rebuilt, no backend request); queued
    otherwise, so the main thread never waits on the backend. An F9 change that needs a new answer replaces
    the request of the operator's previous run if that is still under way (jobs.supersede); a second
    request of a kind already under way is refused, so a double click does not run it twice."""
    task.text = task.text or queued
    redo = bool(op.options.is_repeat)
    blocking = jobs.blocking_default() or (redo and task.reuse and jobs.reusable(task))
    if not blocking and not redo and task.kind in jobs.pending_kinds():
        text = f"{task.label} is already under way: wait for its result, or press Esc to cancel it"
        note("WARNING", text)
        op.report({"WARNING"}, text)
        return {"CANCELLED"}
    try:
        if redo and not blocking:
            jobs.supersede(task)
            message = None
        else:
            message = jobs.run(task, blocking=blocking)
    except jobs.Cancelled as exc:
        note("WARNING", str(exc))
        op.report({"WARNING"}, str(exc))
        return {"CANCELLED"}
    except Exception as exc:
        return fail(op, f"{task.label} failed: {error_text(exc)}")
    text = message if message is not None else queued
    note("INFO", text)
    op.report({"INFO"}, text)
    return {"FINISHED"}


def selected_meshes(context: bpy.types.Context) -> list[bpy.types.Object]:
    """Selected mesh objects, active one last (so pairs read 'from other to active')."""
    objs = [o for o in (context.selected_objects or []) if o.type == "MESH"]
    active = context.active_object
    if active in objs:
        objs.remove(active)
        objs.append(active)
    return objs


class PanelOptions:
    """Mixin: operator options that take the sidebar's last values unless the caller set them
    (a script's keyword, the F9 panel, Shift+R's repeat all count as set)."""

    panel_defaults: dict[str, PanelDefault] = {}

    def fill_from_panel(self, context: bpy.types.Context) -> None:
        """Copy the sidebar's value into every option the caller did not set."""
        s = settings(context)
        props = self.properties  # type: ignore[attr-defined]
        for name, value_of in self.panel_defaults.items():
            if not props.is_property_set(name):
                setattr(self, name, value_of(s))


class ModelOperator(PanelOptions, bpy.types.Operator):
    """Shared poll: a model must exist. A request of the same kind under way does not grey the operator out:
    F9 must reach execute to replace it (dispatch refuses a second plain run instead)."""

    kind = ""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.scene is None or not hasattr(context.scene, "atlasvae"):
            cls.poll_message_set("AtlasVAE needs a scene")
            return False
        if settings(context).model_path() is None:
            cls.poll_message_set("No AtlasVAE model found: add one to the models folder or fine-tune one")
            return False
        return True
