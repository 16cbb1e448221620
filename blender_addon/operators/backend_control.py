# mypy: disable-error-code="valid-type"
"""Backend control operators: start, restart, stop, release memory, load and rescan models, cancel the
running action, open the backend log and the model folder, and show reports from the timer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import EnumProperty, StringProperty

from .. import feedback, jobs
from ..bpyfree import backend_process
from ..bpyfree.backend_process import Backend
from ..preferences import addon_settings
from ..properties import refresh_models, settings
from ..runtime import note, runtime
from . import finetune
from .common import ModelOperator, dispatch, fail, launch_config

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

def _ready_text(backend: Backend) -> str:
    handshake = backend.handshake or {}
    model = (backend.loaded_model or {}).get("name", "none")
    text = f"Backend ready on {handshake.get('device', '?')}, model {model}"
    warnings = handshake.get("warnings") or []
    if warnings:
        text += " (warnings: " + "; ".join(str(w) for w in warnings) + ")"
    return text


class ATLASVAE_OT_backend_start(bpy.types.Operator):
    """Start the backend now and load the chosen model (it otherwise starts on first use)"""

    bl_idname = "atlasvae.backend_start"
    bl_label = "Start Backend"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if backend_process.backend.running or "start" in jobs.pending_kinds():
            cls.poll_message_set("The backend is already running or starting")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        config = launch_config(settings(context) if context.scene is not None else None)

        def work(task: jobs.Task, backend: Backend) -> str:
            backend.ensure(config)
            if config.model_path:
                backend.ensure_model(config)
            return _ready_text(backend)

        return dispatch(self, jobs.Task("start", "Start backend", work, lambda text: text), "Starting the backend...")


class AsksWhileFinetuning:
    """Mixin for operators that end the backend: while a fine-tune runs in it, ask first; then the run is
    cancelled and given time to save its last finished epoch (finetune.end_before_stop), so it resumes when
    started again under the same name."""

    bl_label: str

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        state = runtime()
        if state is None or not state.job_running():
            return self.execute(context)  # type: ignore[attr-defined,no-any-return]
        wm = context.window_manager
        assert wm is not None
        return wm.invoke_confirm(self, event, title=f"{self.bl_label} while a fine-tune runs?",  # type: ignore[arg-type]
                                 message=f"This stops the running fine-tune after it saves its last finished "
                                         f"epoch (up to {finetune.SAVE_WAIT_S:.0f} s); resume it from Unfinished "
                                         f"Fine-tunes in the Fine-tune panel.",
                                 confirm_text=self.bl_label, icon="WARNING")


def _running_job() -> str:
    """The id of the fine-tune running in the backend ("" when none), read on the main thread."""
    state = runtime()
    return state.job_id if state is not None and state.job_running() else ""


def _after_stop(result: tuple[dict[str, Any] | None, str]) -> str:
    """Main thread: record how a fine-tune the stop ended finished, then say what the stop did."""
    ended, text = result
    finetune.record_end(ended)
    return text


class ATLASVAE_OT_backend_restart(AsksWhileFinetuning, bpy.types.Operator):
    """Stop the backend and start it again with the current preferences (device, interpreter)"""

    bl_idname = "atlasvae.backend_restart"
    bl_label = "Restart Backend"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if "start" in jobs.pending_kinds():
            cls.poll_message_set("The backend is starting")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        config = launch_config(settings(context) if context.scene is not None else None)
        job_id = _running_job()

        def work(task: jobs.Task, backend: Backend) -> tuple[dict[str, Any] | None, str]:
            ended = finetune.end_before_stop(backend, job_id)
            backend.stop()
            backend.ensure(config)
            if config.model_path:
                backend.ensure_model(config)
            return ended, _ready_text(backend)

        return dispatch(self, jobs.Task("start", "Restart backend", work, _after_stop), "Restarting the backend...")


class ATLASVAE_OT_backend_stop(AsksWhileFinetuning, bpy.types.Operator):
    """Stop the backend process and free all its memory (it starts again on next use)"""

    bl_idname = "atlasvae.backend_stop"
    bl_label = "Stop Backend"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if backend_process.backend.client is None:
            cls.poll_message_set("The backend is not running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        job_id = _running_job()

        def work(task: jobs.Task, backend: Backend) -> tuple[dict[str, Any] | None, str]:
            ended = finetune.end_before_stop(backend, job_id)
            backend.stop()
            return ended, "Backend stopped"

        return dispatch(self, jobs.Task("stop", "Stop backend", work, _after_stop), "Stopping the backend...")


class ATLASVAE_OT_release_memory(bpy.types.Operator):
    """Unload the model from the backend and return its memory (it reloads on next use)"""

    bl_idname = "atlasvae.release_memory"
    bl_label = "Release Memory"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not backend_process.backend.running:
            cls.poll_message_set("The backend is not running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        def work(task: jobs.Task, backend: Backend) -> dict[str, Any]:
            client = backend.client
            if client is None:
                raise RuntimeError("the backend is not running")
            reply = client.call("release", {})
            backend.forget_model()
            return dict(reply)

        def apply(reply: dict[str, Any]) -> str:
            before, after = reply.get("rss_before"), reply.get("rss_after")
            if isinstance(before, int) and isinstance(after, int):
                return f"Released the model: backend memory {before / 2**20:.0f} MB -> {after / 2**20:.0f} MB"
            return "Released the model" if reply.get("released") else "No model was loaded"

        return dispatch(self, jobs.Task("release", "Release memory", work, apply), "Releasing memory...")


class ATLASVAE_OT_load_model(ModelOperator):
    """Load the chosen model into the backend now (actions load it anyway when needed)"""

    bl_idname = "atlasvae.load_model"
    bl_label = "Load Model"
    kind = "load"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        config = launch_config(settings(context))

        def work(task: jobs.Task, backend: Backend) -> str:
            _client, info = backend.ensure_model(config)
            return f"Loaded model {info.get('name')} on {(backend.handshake or {}).get('device', '?')}"

        return dispatch(self, jobs.Task(self.kind, "Load model", work, lambda text: text), "Loading the model...")


class ATLASVAE_OT_refresh_models(bpy.types.Operator):
    """Scan the model folders again (bundled models, the user models folder)"""

    bl_idname = "atlasvae.refresh_models"
    bl_label = "Refresh Models"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        entries = refresh_models()
        self.report({"INFO"}, f"{feedback.counted(len(entries), 'model')} found")
        return {"FINISHED"}


class ATLASVAE_OT_cancel(bpy.types.Operator):
    """Cancel the running AtlasVAE action: nothing it would have added stays in the scene"""

    bl_idname = "atlasvae.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not jobs.pending():
            cls.poll_message_set("Nothing is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        labels = jobs.cancel()
        text = f"Cancelled: {', '.join(labels)}"
        note("WARNING", text)
        self.report({"WARNING"}, text)
        return {"FINISHED"}


def backend_log_path() -> Path:
    """Where the backend writes its log (the client tees the backend's stderr there)."""
    return backend_process.log_path(addon_settings().user_dir)


def _open(op: bpy.types.Operator, path: Path, what: str) -> set[OperatorReturnItems]:
    if not path.exists():
        return fail(op, f"The {what} {path} does not exist yet")
    if bpy.app.background:
        op.report({"INFO"}, f"The {what} is {path}")
        return {"FINISHED"}
    bpy.ops.wm.path_open(filepath=str(path))
    return {"FINISHED"}


class ATLASVAE_OT_open_log(bpy.types.Operator):
    """Open the backend's log file (every start, request and error, with tracebacks)"""

    bl_idname = "atlasvae.open_log"
    bl_label = "Open Backend Log"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        return _open(self, backend_log_path(), "backend log")


class ATLASVAE_OT_open_folder(bpy.types.Operator):
    """Open the chosen model's folder (weights, config.json and its model card) in the file browser"""

    bl_idname = "atlasvae.open_folder"
    bl_label = "Open Model Folder"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        path = settings(context).model_path() if context.scene is not None else None
        if path is None:
            return fail(self, "No AtlasVAE model found: add one to the models folder or fine-tune one")
        return _open(self, Path(path), "model folder")


class ATLASVAE_OT_report_message(bpy.types.Operator):
    """Show a message from a background reply in the status bar and Info log (an error also in a popup)"""

    bl_idname = "atlasvae.report_message"
    bl_label = "AtlasVAE Message"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=(("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")))
    message: StringProperty()
    fix: StringProperty(description="What fixes an error: feedback.SETUP or LOG", default=feedback.LOG)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        self.report({self.level}, self.message)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        """Report from the next event instead: the report of an operator called from Python goes back to
        the caller (an error as an exception), one of a running modal operator to the status bar."""
        wm = context.window_manager
        assert wm is not None
        self._timer = wm.event_timer_add(0.0, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        wm = context.window_manager
        assert wm is not None
        wm.event_timer_remove(self._timer)
        if self.level != "ERROR":
            self.report({self.level}, self.message)
            return {"FINISHED"}
        # An error goes to the status bar and Info as a warning (yellow): filed as an error, Blender would
        # open its own report popup beside this one. The one popup has the whole message and what fixes it.
        self.report({"WARNING"}, self.message)
        message, fix = self.message, self.fix

        def draw(menu: bpy.types.UIPopupMenu, _context: bpy.types.Context) -> None:
            assert menu.layout is not None
            feedback.draw_error(menu.layout, message, fix)

        wm.popup_menu(draw, title=feedback.error_title(message), icon="ERROR")
        return {"FINISHED"}


def _start_task() -> jobs.Task:
    config = launch_config(None)

    def work(task: jobs.Task, backend: Backend) -> str:
        backend.ensure(config)
        if config.model_path:
            backend.ensure_model(config)
        return _ready_text(backend)

    return jobs.Task("start", "Start backend", work, lambda text: text)


def _deferred_start() -> None:
    try:
        jobs.run(_start_task())
    except Exception as exc:
        feedback.report("ERROR", f"Start backend failed: {backend_process.error_text(exc)}", feedback.fix_for(exc))


def start_on_load() -> None:
    """At register: start the backend when the preference asks for it, outside registration itself
    (a timer in interactive Blender; right away in background mode, where timers never fire)."""
    if not addon_settings().start_on_load:
        return
    if bpy.app.background:
        _deferred_start()
    else:
        bpy.app.timers.register(_deferred_start, first_interval=0.5)


CLASSES = (ATLASVAE_OT_backend_start, ATLASVAE_OT_backend_restart, ATLASVAE_OT_backend_stop,
           ATLASVAE_OT_release_memory, ATLASVAE_OT_load_model, ATLASVAE_OT_refresh_models, ATLASVAE_OT_cancel,
           ATLASVAE_OT_open_log, ATLASVAE_OT_open_folder, ATLASVAE_OT_report_message)
