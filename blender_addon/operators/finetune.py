# mypy: disable-error-code="valid-type"
"""Fine-tune operators: start (from a folder, the selected objects or a collection) and cancel, plus the
handlers that follow the backend's progress and job_done notifications on the main thread.

Scene sources are written as their evaluated meshes (modifiers applied, world space), one OBJ per object,
to the user folder's finetune-data/NAME (locate.finetune_data_dir), which the backend then reads like any
folder. The path is the same for every run of that name, so a stopped run resumes on the same data; the
folder is removed once the fine-tune finishes. Starting an unfinished run again (the panel lists them)
resumes it with the settings it recorded in train_state.json; only the epoch count may be raised.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.props import EnumProperty, IntProperty, StringProperty

from .. import feedback, jobs
from ..bpyfree import backend_process, locate
from ..bpyfree.backend_process import Backend
from ..bpyfree.client import BackendError
from ..mesh_convert import MeshConvertError, object_triangles
from ..preferences import addon_settings
from ..properties import FINETUNE_SOURCES, FREEZE_DESCRIPTION, FREEZE_GROUPS, refresh_models, settings
from ..runtime import runtime
from .common import OPTION, PanelOptions, dispatch, fail, launch_config, selected_meshes

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

JOB_POLL_S = 0.2
JOB_STATUS_EVERY_S = 2.0
FINAL_JOB_STATES = ("done", "failed", "cancelled")
SAVE_WAIT_S = 60.0  # how long Stop/Restart wait for a cancelled fine-tune to save (the server's JOB_STOP_WAIT_S)

_finetune_scene: list[str] = []
_early_done: dict[str, dict[str, Any]] = {}


def _finish_job(state_name: str, params: dict[str, Any]) -> tuple[str, str]:
    """Main thread, on job_done: refresh models and select the new one; returns (level, message)."""
    state = runtime()
    out = state.job_out if state is not None else ""
    if state is not None:
        state.job_state = state_name
    if state_name == "done":
        result = params.get("result") or {}
        model = result.get("model") if isinstance(result, dict) else None
        if isinstance(model, dict):
            backend_process.backend.set_loaded(model)
        refresh_models()
        if out and _finetune_scene:
            scene = bpy.data.scenes.get(_finetune_scene[0])
            if scene is not None:
                try:
                    scene.atlasvae.use_model(out)
                except ValueError as exc:
                    return "WARNING", f"Fine-tune finished but the new model is not listed: {exc}"
        if isinstance(result, dict) and result.get("load_error"):
            return "WARNING", f"Fine-tune finished ({out}) but loading it failed: {result['load_error']}"
        if state is not None:
            state.progress = 1.0
        return "INFO", f"Fine-tune finished: model {Path(out).name} saved to {out} and loaded"
    if state_name == "cancelled":
        return "WARNING", f"Fine-tune cancelled (partial model kept in {out})"
    return "ERROR", f"Fine-tune failed: {params.get('error') or 'no reason given'}"


def on_notification(message: dict[str, Any]) -> None:
    """Main thread: progress events and job_done for the current fine-tune job."""
    state = runtime()
    params = message.get("params") or {}
    if state is None or not isinstance(params, dict):
        return
    if state.job_state == "submitting" and message.get("method") == "job_done":
        _early_done[str(params.get("job_id"))] = params  # the job ended before its reply was applied
        return
    if params.get("job_id") != state.job_id or not state.job_id:
        return
    method = message.get("method")
    if method == "progress":
        _apply_progress(state, params)
    elif method == "job_done":
        ended = str(params.get("state", "failed"))
        level, text = _finish_job(ended, params)
        _job_ended(ended)
        state.job_message = text
        if not jobs.blocking_default():  # a blocking fine-tune operator reports the outcome itself
            feedback.report(level, text)


def _apply_progress(state: Any, event: dict[str, Any]) -> None:
    epochs = int(event.get("epochs") or state.epochs or 1)
    epoch = int(event.get("epoch") or state.epoch or 0)
    state.epochs, state.epoch = epochs, epoch
    if isinstance(event.get("loss"), (int, float)):
        state.loss = float(event["loss"])
    if isinstance(event.get("eta_s"), (int, float)):
        state.eta_s = float(event["eta_s"])
    steps, step = event.get("steps"), event.get("step")
    if event.get("event") == "step" and isinstance(steps, int) and steps > 0 and isinstance(step, int):
        done = max(0, epoch - 1) + step / steps
    else:
        done = float(epoch)
    state.progress = min(1.0, max(0.0, done / max(1, epochs)))
    if event.get("message"):
        state.job_message = str(event["message"])


def end_before_stop(backend: Backend, job_id: str, wait_s: float = SAVE_WAIT_S) -> dict[str, Any] | None:
    """Worker side, before the backend is stopped under a running fine-tune: cancel it and wait (up to
    `wait_s`) until it has saved its last finished epoch. Returns the job's final status, None when there
    was no job to end or it did not end in time (the stop then goes on and kills it)."""
    client = backend.client
    if client is None or not job_id or not backend.running:
        return None
    deadline = time.monotonic() + wait_s
    try:  # each call bounded by what is left of wait_s: a wedged backend must not hang the stop
        client.call("cancel", {"job_id": job_id}, timeout=wait_s)
        while time.monotonic() < deadline:
            status = client.call("job_status", {"job_id": job_id}, timeout=max(0.1, deadline - time.monotonic()))
            if status.get("state") in FINAL_JOB_STATES:
                return dict(status)
            time.sleep(JOB_POLL_S)
    except BackendError:  # no answer in time, or the backend is gone: the stop goes on and ends it
        pass
    return None


def record_end(status: dict[str, Any] | None) -> None:
    """Main thread, after a stop that ended the fine-tune: report how it ended (from end_before_stop's status)
    unless its job_done notification was handled already."""
    state = runtime()
    if state is None or not state.job_running():
        return
    on_notification({"method": "job_done", "params": status or {
        "job_id": state.job_id, "state": "failed", "error": f"it did not save within {SAVE_WAIT_S:.0f} s of "
        "being stopped, so the backend was ended under it"}})


def job_watch() -> bool:
    """Timer check: True while a fine-tune needs ticking; fails the job if the backend died (not while the
    user stops or restarts it: that task reports how the job ended, see record_end)."""
    state = runtime()
    if state is None or not state.job_running():
        return False
    if {"stop", "start"} & jobs.pending_kinds():
        return True
    if state.job_state != "submitting" and not backend_process.backend.running:
        client = backend_process.backend.client
        why = (client.last_error if client is not None else "") or "the backend stopped"
        state.job_state = "failed"
        state.job_message = f"Fine-tune failed: {why}"
        feedback.report("ERROR", state.job_message)
        return False
    return True


def _valid_model_name(name: str) -> str | None:
    if not name.strip():
        return "Enter a name for the new model"
    if any(ch in name for ch in '/\\:*?"<>|') or name.strip() in (".", ".."):
        return f"Model name {name!r} must not contain / \\ : * ? \" < > |"
    return None


def unfinished(out: Path) -> bool:
    """Whether `out` holds a fine-tune that stopped before its last epoch (its train_state.json says so); the
    backend resumes such a run when it is started again with the same settings, as the CLI does."""
    state = locate.read_run_state(out)
    return state is not None and state.get("finished") is False


def _scene_objects(context: bpy.types.Context, source: str, collection_name: str) -> list[bpy.types.Object] | str:
    """The mesh objects a scene source names, or the reason there are none."""
    if source == "SELECTED":
        objs = selected_meshes(context)
        return objs or "Select the mesh objects to fine-tune on"
    collection = bpy.data.collections.get(collection_name) if collection_name else None
    if collection is None:
        return f"Collection {collection_name!r} does not exist; choose the collection to fine-tune on"
    objs = [o for o in collection.all_objects if o.type == "MESH"]
    return objs or f"Collection {collection_name!r} holds no mesh objects"


def _write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A minimal Wavefront OBJ (vertices and triangles) that the backend's mesh loader reads.

    Not Blender's exporter (bpy.ops.wm.obj_export, checked in bpy 5.0.1): it writes selected, visible
    objects only, so one file per object means changing the user's selection each time, and a hidden member
    of the chosen collection comes out as no file at all while the operator still reports FINISHED."""
    lines = ["v {:.7g} {:.7g} {:.7g}".format(*v) for v in vertices.tolist()]
    lines += ["f {} {} {}".format(*f) for f in (faces + 1).tolist()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def export_objects(context: bpy.types.Context, objs: list[bpy.types.Object], label: str, root: Path) -> Path:
    """Write each object's evaluated mesh (modifiers applied, world space) into `root`, emptied first, as
    <root>/<label>/<object>.obj (the label is the family the backend sees); returns `root`."""
    depsgraph = context.evaluated_depsgraph_get()
    shutil.rmtree(root, ignore_errors=True)
    family = root / (bpy.path.clean_name(label) or "scene")
    family.mkdir(parents=True)
    try:
        for obj in objs:
            vertices, faces = object_triangles(obj, depsgraph)
            _write_obj(family / f"{bpy.path.clean_name(obj.name)}.obj", vertices, faces)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return root


_exported: list[Path] = []  # the running scene fine-tune's export folder, removed when it finishes


def _job_ended(state_name: str) -> None:
    """Forget the running fine-tune's export; remove it when the fine-tune finished (a stopped one keeps it
    for its resume)."""
    if state_name == "done":
        for folder in _exported:
            shutil.rmtree(folder, ignore_errors=True)
    _exported.clear()


def recorded_settings(state: dict[str, Any]) -> tuple[str, str | None, list[str], int]:
    """(data folder, init model, frozen groups, epochs) an unfinished run recorded in train_state.json."""
    config = state.get("config") if isinstance(state.get("config"), dict) else {}
    assert isinstance(config, dict)
    freeze = config.get("freeze") or []
    epochs = config.get("epochs")
    return (str(config.get("data") or ""), str(config["init"]) if config.get("init") else None,
            [str(g) for g in freeze] if isinstance(freeze, list) else [],
            int(epochs) if isinstance(epochs, int) else 1)


class ATLASVAE_OT_finetune_start(PanelOptions, bpy.types.Operator):
    """Fine-tune the chosen model on a folder of meshes, the selected objects or a collection into a new model"""

    bl_idname = "atlasvae.finetune_start"
    bl_label = "Start Fine-tune"
    bl_options = {"REGISTER"}

    source: EnumProperty(name="Train On", items=FINETUNE_SOURCES, default="FOLDER", options=OPTION)
    data: StringProperty(name="Folder", description="Folder of meshes (never modified)", subtype="DIR_PATH",
                         options=OPTION)
    collection: StringProperty(name="Collection", description="Collection whose mesh objects to train on",
                               options=OPTION)
    epochs: IntProperty(name="Epochs", description="Passes over the meshes", default=10, min=1, max=100_000,
                        soft_max=500, options=OPTION)
    name: StringProperty(name="Name", description="Name of the new model (its folder in the user models folder)",
                         default="my-model", options=OPTION)
    freeze: EnumProperty(name="Keep Fixed", description=FREEZE_DESCRIPTION, items=FREEZE_GROUPS, default=set(),
                         options={"ENUM_FLAG", *OPTION})

    panel_defaults = {"source": lambda s: s.finetune_source, "data": lambda s: s.finetune_data,
                      "collection": lambda s: s.finetune_collection.name if s.finetune_collection else "",
                      "epochs": lambda s: s.finetune_epochs, "name": lambda s: s.finetune_name,
                      "freeze": lambda s: set(s.finetune_freeze)}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        state = runtime()
        if context.scene is None or state is None or not hasattr(context.scene, "atlasvae"):
            cls.poll_message_set("AtlasVAE needs a scene")
            return False
        if state.job_running() or "finetune" in jobs.pending_kinds():
            cls.poll_message_set("A fine-tune is already running; cancel it or wait for it to finish")
            return False
        return True  # what to train on is an option of the call, checked (with a reason) in execute

    def _data_folder(self, context: bpy.types.Context, name: str, user_dir: Path) -> Path | str:
        """The folder the backend reads: the chosen one, or scene objects exported to finetune-data/NAME."""
        if self.source == "FOLDER":
            return Path(bpy.path.abspath(self.data))
        objs = _scene_objects(context, self.source, self.collection)
        if isinstance(objs, str):
            return objs
        label = self.collection if self.source == "COLLECTION" else name
        try:
            folder = export_objects(context, objs, label, locate.finetune_data_dir(user_dir, name))
        except (MeshConvertError, OSError) as exc:
            return f"Cannot write the objects for fine-tuning: {exc}"
        _exported[:] = [folder]
        return folder

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        self.fill_from_panel(context)
        s = settings(context)
        state = runtime()
        assert state is not None
        name = self.name.strip()
        problem = _valid_model_name(name)
        prefs = addon_settings()
        out = locate.user_models_dir(prefs.user_dir) / name
        run = locate.read_run_state(out) if problem is None else None
        resuming = run is not None and run.get("finished") is False
        folder = Path(bpy.path.abspath(self.data)) if self.data.strip() else None
        if not resuming and self.source == "FOLDER" and (folder is None or not folder.is_dir()):
            return fail(self, f"Fine-tune folder {str(folder) if folder else '(empty)'!r} does not exist")
        if problem:
            return fail(self, problem)
        if out.exists() and not resuming:
            return fail(self, f"A model named {name!r} already exists at {out}; choose another name")
        epochs = int(self.epochs)
        config = launch_config(s, prefs)
        if run is not None and resuming:  # the run goes on with what it recorded (the backend insists)
            recorded, init, frozen, _epochs = recorded_settings(run)
            if not recorded or not Path(recorded).is_dir():
                return fail(self, f"Cannot resume the fine-tune {name!r}: the meshes it trained on "
                                  f"({recorded or 'not recorded'}) are gone; choose another name to start afresh")
            data: Path | str = Path(recorded)
            _exported[:] = [Path(recorded)] if Path(recorded) == locate.finetune_data_dir(prefs.user_dir, name) else []
        else:
            data = self._data_folder(context, name, prefs.user_dir)
            if isinstance(data, str):
                return fail(self, data)
            init = config.model_path
            frozen = [group for group, *_ in FREEZE_GROUPS if group in self.freeze]
        params: dict[str, Any] = {"data": str(data), "out": str(out), "epochs": epochs, "name": name}
        if init:
            params["init"] = init
        if frozen:  # sent only when asked for, so a plain fine-tune's request is what it always was
            params["freeze"] = ",".join(frozen)
        fixed = f", keeping {' and '.join(frozen)} fixed" if frozen else ""
        scene = context.scene
        assert scene is not None
        _finetune_scene[:] = [scene.name]
        state.job_id, state.job_state, state.job_out = "", "submitting", str(out)
        state.epoch, state.epochs, state.progress, state.loss, state.eta_s = 0, epochs, 0.0, 0.0, 0.0
        state.job_message = "Resuming fine-tune..." if resuming else "Starting fine-tune..."
        exported = len(list(Path(data).rglob("*.obj"))) if _exported else 0
        what = feedback.counted(exported, "scene object") if _exported else str(data)

        def work(task: jobs.Task, backend: Backend) -> str:
            return str(backend.call(config, "finetune", params)["job_id"])

        def apply(job_id: str) -> str:
            state.job_id, state.job_state = job_id, "running"
            early = _early_done.pop(job_id, None)
            if early is not None:
                on_notification({"method": "job_done", "params": early})
            started = "resumed (its unfinished run goes on)" if resuming else "started"
            return f"Fine-tune {job_id} {started}: {feedback.counted(epochs, 'epoch')} on {what}{fixed} -> {out}"

        def reset(_exc: BaseException) -> None:
            state.job_state = "failed"
            _job_ended("failed")

        task = jobs.Task("finetune", "Fine-tune", work, apply, on_error=reset)
        if not jobs.blocking_default():
            return dispatch(self, task, "Starting fine-tune...")
        try:
            apply(work(task, backend_process.backend))
            self._wait(state)
        except Exception as exc:
            state.job_state = "failed"
            return fail(self, f"Fine-tune failed: {backend_process.error_text(exc)}")
        finally:
            if state.job_state in FINAL_JOB_STATES:
                _job_ended(state.job_state)
        if state.job_state == "done":
            self.report({"INFO"}, state.job_message)
            return {"FINISHED"}
        if state.job_state == "cancelled":
            self.report({"WARNING"}, state.job_message)
            return {"CANCELLED"}
        return fail(self, state.job_message)

    @staticmethod
    def _wait(state: Any) -> None:
        """Background mode: block until the job ends, pumping progress into the runtime properties."""
        last_status = time.monotonic()
        while state.job_state not in FINAL_JOB_STATES:
            jobs.pump_notifications()
            if state.job_state in FINAL_JOB_STATES:
                break
            if not backend_process.backend.running:
                client = backend_process.backend.client
                raise RuntimeError((client.last_error if client is not None else "") or "the backend stopped")
            if time.monotonic() - last_status > JOB_STATUS_EVERY_S:
                last_status = time.monotonic()
                client = backend_process.backend.client
                assert client is not None
                status = client.call("job_status", {"job_id": state.job_id})
                if status.get("state") in FINAL_JOB_STATES:
                    jobs.pump_notifications()
                    if state.job_state not in FINAL_JOB_STATES:
                        on_notification({"method": "job_done", "params": status})
                    break
            time.sleep(JOB_POLL_S)


class ATLASVAE_OT_finetune_cancel(bpy.types.Operator):
    """Stop the running fine-tune after its current step (the partial model is kept)"""

    bl_idname = "atlasvae.finetune_cancel"
    bl_label = "Cancel Fine-tune"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        state = runtime()
        if state is None or state.job_state != "running" or not state.job_id:
            cls.poll_message_set("No fine-tune is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        state = runtime()
        assert state is not None
        job_id = state.job_id

        def work(task: jobs.Task, backend: Backend) -> str:
            client = backend.client
            if client is None:
                raise RuntimeError("the backend is not running")
            return str(client.call("cancel", {"job_id": job_id}).get("state", "cancelling"))

        def apply(job_state: str) -> str:
            if state.job_id == job_id and state.job_state == "running":
                state.job_state = job_state if job_state in FINAL_JOB_STATES else "cancelling"
            return f"Cancelling fine-tune {job_id}"

        return dispatch(self, jobs.Task("cancel", "Cancel fine-tune", work, apply), f"Cancelling fine-tune {job_id}...")




CLASSES = (ATLASVAE_OT_finetune_start, ATLASVAE_OT_finetune_cancel)
