# mypy: disable-error-code="valid-type"
"""Operators: backend control, sample, reconstruct, interpolate, variations, fine-tune, load model.

Each operator gathers its inputs on the main thread (mesh arrays, parameters, where results go),
hands a jobs.Task to jobs.run and reports; results become objects in the task's `apply`, on the main
thread, one object per step (build_objects) so the timer can spread a big result over several calls.
Failures are reported with the backend's own message, never swallowed.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator

import bpy
import numpy as np
from bpy.props import EnumProperty, StringProperty

from . import jobs, locate
from .mesh_convert import MeshConvertError, arrays_to_mesh, bounds, object_triangles
from .preferences import AddonSettings, addon_settings
from .properties import AtlasVAESettings, models_dirs, refresh_models, runtime, settings
from .wire import decode_mesh, encode_mesh

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

JOB_POLL_S = 0.2
JOB_STATUS_EVERY_S = 2.0
FINAL_JOB_STATES = ("done", "failed", "cancelled")
MIN_GAP = 1.0

Arrays = tuple[np.ndarray, np.ndarray]


def launch_config(scene_settings: AtlasVAESettings | None, prefs: AddonSettings | None = None) -> jobs.LaunchConfig:
    """What to start the backend with: preferences plus the scene's chosen model."""
    prefs = prefs or addon_settings()
    model_path = scene_settings.model_path() if scene_settings is not None else None
    if model_path is None:
        from .properties import model_entries

        entries = model_entries()
        model_path = str(entries[0].path) if entries else None
    return jobs.LaunchConfig(python_preference=prefs.python_path, user_dir=prefs.user_dir, device=prefs.device,
                             model_path=model_path, models_dirs=models_dirs())


def _note(level: str, message: str) -> None:
    state = runtime()
    if state is not None:
        state.last_report = f"{level}: {message}"


def fail(op: bpy.types.Operator, message: str) -> set[OperatorReturnItems]:
    """Report an error with its real text and cancel."""
    _note("ERROR", message)
    op.report({"ERROR"}, message)
    return {"CANCELLED"}


def dispatch(op: bpy.types.Operator, task: jobs.Task, queued: str) -> set[OperatorReturnItems]:
    """Run `task` (now in background mode, queued otherwise) and report its outcome or failure."""
    try:
        message = jobs.run(task)
    except Exception as exc:
        return fail(op, f"{task.label} failed: {jobs.error_text(exc)}")
    text = message if message is not None else queued
    _note("INFO", text)
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


def _scene_name(context: bpy.types.Context) -> str:
    scene = context.scene
    if scene is None:
        raise RuntimeError("no scene in context")
    return scene.name


def _target_scene(name: str) -> bpy.types.Scene:
    scene = bpy.data.scenes.get(name)
    if scene is None:
        scenes = list(bpy.data.scenes)
        if not scenes:
            raise RuntimeError("no scene to add results to")
        scene = scenes[0]
    return scene


def _new_collection(scene: bpy.types.Scene, name: str) -> bpy.types.Collection:
    collection = bpy.data.collections.new(name)
    scene.collection.children.link(collection)
    return collection


def _add_object(collection: bpy.types.Collection, name: str, vertices: np.ndarray, faces: np.ndarray,
                location: np.ndarray, props: dict[str, Any]) -> bpy.types.Object:
    obj = bpy.data.objects.new(name, arrays_to_mesh(name, vertices, faces))
    obj.location = tuple(float(x) for x in location)
    for key, value in props.items():
        obj[f"atlasvae_{key}"] = value
    collection.objects.link(obj)
    return obj


@dataclass
class NewObject:
    """One result object to add: name, local mesh arrays, world location, custom properties
    (stored as atlasvae_<key>) and the existing collection it goes into when the build makes none."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    location: np.ndarray
    props: dict[str, Any]
    into: str | None = None


IdRef = tuple[str, int]  # (name, session_uid): finds a datablock again between timer calls


def _find(ids: Any, ref: IdRef) -> Any:
    """The datablock `ref` names if it still exists and is the same one (not a namesake after undo)."""
    found = ids.get(ref[0])
    return found if found is not None and found.session_uid == ref[1] else None


def _remove_built(objects: list[IdRef], collection: IdRef | None) -> None:
    """Delete the objects (and their meshes) and the collection an unfinished build made."""
    for ref in reversed(objects):
        obj = _find(bpy.data.objects, ref)
        if obj is None:
            continue
        mesh = obj.data
        bpy.data.objects.remove(obj)
        if isinstance(mesh, bpy.types.Mesh) and mesh.users == 0:
            bpy.data.meshes.remove(mesh)
    found = _find(bpy.data.collections, collection) if collection is not None else None
    if found is not None:
        bpy.data.collections.remove(found)


def build_objects(scene_name: str, items: list[NewObject], undo_message: str,
                  new_collection: str | None = None) -> Generator[None, None, str]:
    """Steps (see jobs.Steps) that add `items` one object per step, in a new collection named
    `new_collection` (made in the first step, in scene `scene_name`) or each in its `into` collection,
    then record ONE undo step; returns the new collection's final name ("" without one).

    Between steps only names are held and looked up again, so an undo or a file load between timer
    calls is noticed instead of touching freed data. A build that cannot finish is rolled back rather
    than completed: when a step fails (bad mesh, its collection removed meanwhile) or the Steps are
    closed early (jobs.drop_pending, on unregister), every object, mesh and collection it made is
    removed again before the error goes on, and no undo step is recorded."""
    made: list[IdRef] = []
    collection_ref: IdRef | None = None
    try:
        if new_collection is not None:
            collection = _new_collection(_target_scene(scene_name), new_collection)
            collection_ref = (collection.name, collection.session_uid)
        for item in items:
            if collection_ref is not None:
                target = _find(bpy.data.collections, collection_ref)
                if target is None:
                    raise RuntimeError(f"collection '{collection_ref[0]}' was removed (undo or another file loaded) "
                                       f"after {len(made)} of {len(items)} objects were added")
            else:
                target = _collection_for(_target_scene(scene_name), item.into)
            obj = _add_object(target, item.name, item.vertices, item.faces, item.location, item.props)
            made.append((obj.name, obj.session_uid))
            yield
    except BaseException:
        _remove_built(made, collection_ref)
        raise
    jobs.undo_push(undo_message)
    return collection_ref[0] if collection_ref is not None else ""


def _width(vertices: np.ndarray) -> float:
    lo, hi = bounds(vertices)
    return max(float(hi[0] - lo[0]), 1e-6)


def _gap(width: float) -> float:
    return width * 1.2 if width > 1e-4 else MIN_GAP


def _center(vertices: np.ndarray) -> np.ndarray:
    lo, hi = bounds(vertices)
    return (lo + hi) / 2.0


def _decode_all(reply: dict[str, Any]) -> list[Arrays]:
    return [decode_mesh(m) for m in reply["meshes"]]


@dataclass
class Source:
    """A selected object captured on the main thread: its name, collection and world triangles."""

    name: str
    collection: str | None
    vertices: np.ndarray
    faces: np.ndarray


def capture(context: bpy.types.Context, obj: bpy.types.Object) -> Source:
    """World-space triangles of `obj` (modifiers applied) plus where its result should go."""
    depsgraph = context.evaluated_depsgraph_get()
    vertices, faces = object_triangles(obj, depsgraph)
    collection = obj.users_collection[0].name if obj.users_collection else None
    return Source(obj.name, collection, vertices, faces)


def _collection_for(scene: bpy.types.Scene, name: str | None) -> bpy.types.Collection:
    if name is not None:
        found = bpy.data.collections.get(name)
        if found is not None:
            return found
        if name == scene.collection.name:
            return scene.collection
    return scene.collection


class _ModelOperator(bpy.types.Operator):
    """Shared poll: a model must exist and the same request must not be pending."""

    kind = ""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.scene is None:
            return False
        if settings(context).model_path() is None:
            cls.poll_message_set("No AtlasVAE model found: add one to the models folder or fine-tune one")
            return False
        if cls.kind in jobs.pending_kinds():
            cls.poll_message_set("Already working on this; wait for the result")
            return False
        return True


class ATLASVAE_OT_sample(_ModelOperator):
    """Sample new shapes from the model into a new collection on a grid at the 3D cursor"""

    bl_idname = "atlasvae.sample"
    bl_label = "Sample Shapes"
    bl_options = {"REGISTER", "UNDO"}
    kind = "sample"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = settings(context)
        if s.random_seed:
            s.seed = random.randrange(0, 2**31 - 1)
        seed, count, temperature = int(s.seed), int(s.count), float(s.temperature)
        resolution, spacing = s.resolution(), float(s.spacing)
        config = launch_config(s)
        scene_name = _scene_name(context)
        cursor = np.array(context.scene.cursor.location, dtype=np.float64)  # type: ignore[union-attr]
        label = s.sample_label()
        params: dict[str, Any] = {"count": count, "seed": seed, "temperature": temperature, "resolution": resolution}
        if label is not None:
            params["label"] = label
        what = f"{label} shapes" if label is not None else "shapes"

        def work(backend: jobs.Backend) -> tuple[str, list[Arrays]]:
            client, info = backend.ensure_model(config)
            return str(info.get("name", "model")), _decode_all(client.call("sample", params))

        def apply(result: tuple[str, list[Arrays]]) -> jobs.Steps:
            model, meshes = result
            family = f" {label}" if label is not None else ""
            columns = max(1, int(np.ceil(np.sqrt(len(meshes)))))
            props: dict[str, Any] = {"model": model, "seed": seed, "temperature": temperature, "resolution": resolution}
            if label is not None:
                props["label"] = label
            items = []
            for i, (vertices, faces) in enumerate(meshes):
                row, col = divmod(i, columns)
                location = cursor + np.array([col * spacing, row * spacing, 0.0])
                items.append(NewObject(f"{model}_s{seed}_{i}", vertices, faces, location, {**props, "index": i}))
            collection = yield from build_objects(scene_name, items, "AtlasVAE: Sample Shapes",
                                                  new_collection=f"AtlasVAE Samples {model}{family} seed {seed}")
            return f"Sampled {len(meshes)} {what} from {model} (seed {seed}) into '{collection}'"

        task = jobs.Task(self.kind, "Sample Shapes", work, apply)
        return dispatch(self, task, f"Sampling {count} {what} (seed {seed})...")


class ATLASVAE_OT_reconstruct(_ModelOperator):
    """Encode and decode every selected mesh (modifiers applied); results go beside the originals"""

    bl_idname = "atlasvae.reconstruct"
    bl_label = "Reconstruct Selected"
    bl_options = {"REGISTER", "UNDO"}
    kind = "reconstruct"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not super().poll(context):
            return False
        if not selected_meshes(context):
            cls.poll_message_set("Select at least one mesh object to reconstruct")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        objs = selected_meshes(context)
        if not objs:
            return fail(self, "Select at least one mesh object to reconstruct")
        try:
            sources = [capture(context, o) for o in objs]
        except MeshConvertError as exc:
            return fail(self, str(exc))
        s = settings(context)
        resolution, config, scene_name = s.resolution(), launch_config(s), _scene_name(context)
        skipped = [o.name for o in (context.selected_objects or []) if o.type != "MESH"]

        def work(backend: jobs.Backend) -> tuple[str, list[tuple[Source, Arrays, float | None]]]:
            client, info = backend.ensure_model(config)
            out = []
            for src in sources:
                reply = client.call("reconstruct", {"mesh": encode_mesh(src.vertices, src.faces),
                                                    "resolution": resolution})
                out.append((src, decode_mesh(reply["mesh"]), reply.get("chamfer")))
            return str(info.get("name", "model")), out

        def apply(result: tuple[str, list[tuple[Source, Arrays, float | None]]]) -> jobs.Steps:
            model, items = result
            parts, objects = [], []
            for src, (vertices, faces), chamfer in items:
                center = _center(src.vertices)
                location = center + np.array([_gap(_width(src.vertices)), 0.0, 0.0])
                props: dict[str, Any] = {"model": model, "source": src.name, "resolution": resolution}
                if chamfer is not None:
                    props["chamfer_x1e3"] = float(chamfer)
                objects.append(NewObject(f"{src.name}_recon", vertices - center, faces, location, props,
                                         into=src.collection))
                parts.append(f"{src.name} {chamfer:.3f}" if chamfer is not None else f"{src.name} n/a")
            yield from build_objects(scene_name, objects, "AtlasVAE: Reconstruct")
            text = f"Reconstructed {len(items)} with {model}; Chamfer x1e-3: " + ", ".join(parts)
            if skipped:
                text += f" (skipped non-mesh: {', '.join(skipped)})"
            return text

        task = jobs.Task(self.kind, "Reconstruct", work, apply)
        return dispatch(self, task, f"Reconstructing {len(sources)} object(s)...")


class ATLASVAE_OT_interpolate(_ModelOperator):
    """Shapes morphing from the other selected mesh to the active one, in a row below them"""

    bl_idname = "atlasvae.interpolate"
    bl_label = "Interpolate"
    bl_options = {"REGISTER", "UNDO"}
    kind = "interpolate"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not super().poll(context):
            return False
        if len(selected_meshes(context)) != 2:
            cls.poll_message_set("Select exactly two mesh objects to interpolate between")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        objs = selected_meshes(context)
        if len(objs) != 2:
            return fail(self, f"Select exactly two mesh objects to interpolate between ({len(objs)} selected)")
        try:
            a, b = (capture(context, o) for o in objs)
        except MeshConvertError as exc:
            return fail(self, str(exc))
        s = settings(context)
        steps, resolution, config, scene_name = int(s.steps), s.resolution(), launch_config(s), _scene_name(context)
        step = max(_gap(_width(a.vertices)), _gap(_width(b.vertices)))
        lo = np.minimum(bounds(a.vertices)[0], bounds(b.vertices)[0])
        hi = np.maximum(bounds(a.vertices)[1], bounds(b.vertices)[1])
        origin = _center(a.vertices) - np.array([0.0, (hi[1] - lo[1]) * 0.6 + step, 0.0])

        def work(backend: jobs.Backend) -> tuple[str, list[Arrays]]:
            client, info = backend.ensure_model(config)
            reply = client.call("interpolate", {"mesh_a": encode_mesh(a.vertices, a.faces),
                                                "mesh_b": encode_mesh(b.vertices, b.faces),
                                                "steps": steps, "resolution": resolution})
            return str(info.get("name", "model")), _decode_all(reply)

        def apply(result: tuple[str, list[Arrays]]) -> jobs.Steps:
            model, meshes = result
            items = []
            for i, (vertices, faces) in enumerate(meshes):
                location = origin + np.array([i * step, 0.0, 0.0])
                t = i / max(1, len(meshes) - 1)
                items.append(NewObject(f"{a.name}_to_{b.name}_{i}", vertices - _center(vertices), faces, location,
                                       {"model": model, "source": f"{a.name} -> {b.name}", "index": i, "t": t}))
            yield from build_objects(scene_name, items, "AtlasVAE: Interpolate",
                                     new_collection=f"AtlasVAE Interpolation {a.name} to {b.name}")
            return f"Interpolated {a.name} -> {b.name} in {len(meshes)} steps with {model}"

        task = jobs.Task(self.kind, "Interpolate", work, apply)
        return dispatch(self, task, f"Interpolating {a.name} -> {b.name}...")


class ATLASVAE_OT_variations(_ModelOperator):
    """Random variations of the active mesh, in a row beside it"""

    bl_idname = "atlasvae.variations"
    bl_label = "Variations"
    bl_options = {"REGISTER", "UNDO"}
    kind = "variations"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not super().poll(context):
            return False
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            cls.poll_message_set("Make a mesh object active to make variations of it")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            return fail(self, "Make a mesh object active to make variations of it")
        try:
            src = capture(context, obj)
        except MeshConvertError as exc:
            return fail(self, str(exc))
        s = settings(context)
        params = {"count": int(s.variation_count), "spread": float(s.spread), "seed": int(s.variation_seed),
                  "resolution": s.resolution()}
        config, scene_name = launch_config(s), _scene_name(context)
        center, gap = _center(src.vertices), _gap(_width(src.vertices))

        def work(backend: jobs.Backend) -> tuple[str, list[Arrays]]:
            client, info = backend.ensure_model(config)
            reply = client.call("variations", {"mesh": encode_mesh(src.vertices, src.faces), **params})
            return str(info.get("name", "model")), _decode_all(reply)

        def apply(result: tuple[str, list[Arrays]]) -> jobs.Steps:
            model, meshes = result
            items = []
            for i, (vertices, faces) in enumerate(meshes):
                location = center + np.array([(i + 1) * gap, 0.0, 0.0])
                items.append(NewObject(f"{src.name}_var{i}", vertices - center, faces, location,
                                       {"model": model, "source": src.name, "index": i, "seed": params["seed"],
                                        "spread": params["spread"]}))
            yield from build_objects(scene_name, items, "AtlasVAE: Variations",
                                     new_collection=f"AtlasVAE Variations {src.name}")
            return f"Made {len(meshes)} variations of {src.name} with {model}"

        task = jobs.Task(self.kind, "Variations", work, apply)
        return dispatch(self, task, f"Making variations of {src.name}...")


# ---- fine-tune ------------------------------------------------------------------------------------

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
            jobs.backend.set_loaded(model)
        refresh_models()
        if out and _finetune_scene:
            scene = bpy.data.scenes.get(_finetune_scene[0])
            if scene is not None:
                try:
                    scene.atlasvae.use_model(out)  # type: ignore[attr-defined]
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
        level, text = _finish_job(str(params.get("state", "failed")), params)
        state.job_message = text
        if not jobs.blocking_default():  # a blocking fine-tune operator reports the outcome itself
            jobs.report(level, text)


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
        state.job_message = str(event["message"])[:200]


def job_watch() -> bool:
    """Timer check: True while a fine-tune needs ticking; fails the job if the backend died."""
    state = runtime()
    if state is None or not state.job_running():
        return False
    if state.job_state != "submitting" and not jobs.backend.running:
        client = jobs.backend.client
        why = (client.last_error if client is not None else "") or "the backend stopped"
        state.job_state = "failed"
        state.job_message = f"Fine-tune failed: {why}"
        jobs.report("ERROR", state.job_message)
        return False
    return True


def _valid_model_name(name: str) -> str | None:
    if not name.strip():
        return "Enter a name for the new model"
    if any(ch in name for ch in '/\\:*?"<>|') or name.strip() in (".", ".."):
        return f"Model name {name!r} must not contain / \\ : * ? \" < > |"
    return None


class ATLASVAE_OT_finetune_start(bpy.types.Operator):
    """Fine-tune the chosen model on a folder of meshes; the result becomes a new model in the list"""

    bl_idname = "atlasvae.finetune_start"
    bl_label = "Start Fine-tune"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        state = runtime()
        if context.scene is None or state is None:
            return False
        if state.job_running() or "finetune" in jobs.pending_kinds():
            cls.poll_message_set("A fine-tune is already running; cancel it or wait for it to finish")
            return False
        if not settings(context).finetune_data.strip():
            cls.poll_message_set("Choose a folder of meshes to fine-tune on")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = settings(context)
        state = runtime()
        assert state is not None
        data = Path(bpy.path.abspath(s.finetune_data)) if s.finetune_data.strip() else None
        if data is None or not data.is_dir():
            return fail(self, f"Fine-tune folder {str(data) if data else '(empty)'!r} does not exist")
        name = s.finetune_name.strip()
        problem = _valid_model_name(name)
        if problem:
            return fail(self, problem)
        prefs = addon_settings()
        out = locate.user_models_dir(prefs.user_dir) / name
        if out.exists():
            return fail(self, f"A model named {name!r} already exists at {out}; choose another name")
        config = launch_config(s, prefs)
        params: dict[str, Any] = {"data": str(data), "out": str(out), "epochs": int(s.finetune_epochs), "name": name}
        if config.model_path:
            params["init"] = config.model_path
        _finetune_scene[:] = [_scene_name(context)]
        state.job_id, state.job_state, state.job_out = "", "submitting", str(out)
        state.epoch, state.epochs, state.progress, state.loss, state.eta_s = 0, int(s.finetune_epochs), 0.0, 0.0, 0.0
        state.job_message = "Starting fine-tune..."

        def work(backend: jobs.Backend) -> str:
            return str(backend.call(config, "finetune", params)["job_id"])

        def apply(job_id: str) -> str:
            state.job_id, state.job_state = job_id, "running"
            early = _early_done.pop(job_id, None)
            if early is not None:
                on_notification({"method": "job_done", "params": early})
            return f"Fine-tune {job_id} started: {params['epochs']} epoch(s) on {data} -> {out}"

        def reset(_exc: BaseException) -> None:
            state.job_state = "failed"

        task = jobs.Task("finetune", "Fine-tune", work, apply, on_error=reset)
        if not jobs.blocking_default():
            return dispatch(self, task, "Starting fine-tune...")
        try:
            apply(work(jobs.backend))
            self._wait(state)
        except Exception as exc:
            state.job_state = "failed"
            return fail(self, f"Fine-tune failed: {jobs.error_text(exc)}")
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
            if not jobs.backend.running:
                client = jobs.backend.client
                raise RuntimeError((client.last_error if client is not None else "") or "the backend stopped")
            if time.monotonic() - last_status > JOB_STATUS_EVERY_S:
                last_status = time.monotonic()
                client = jobs.backend.client
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

        def work(backend: jobs.Backend) -> str:
            client = backend.client
            if client is None:
                raise RuntimeError("the backend is not running")
            return str(client.call("cancel", {"job_id": job_id}).get("state", "cancelling"))

        def apply(job_state: str) -> str:
            if state.job_id == job_id and state.job_state == "running":
                state.job_state = job_state if job_state in FINAL_JOB_STATES else "cancelling"
            return f"Cancelling fine-tune {job_id}"

        return dispatch(self, jobs.Task("cancel", "Cancel fine-tune", work, apply), f"Cancelling fine-tune {job_id}...")


# ---- backend control ------------------------------------------------------------------------------


def _ready_text(backend: jobs.Backend) -> str:
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
        if jobs.backend.running or "start" in jobs.pending_kinds():
            cls.poll_message_set("The backend is already running or starting")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        config = launch_config(settings(context) if context.scene is not None else None)

        def work(backend: jobs.Backend) -> str:
            backend.ensure(config)
            if config.model_path:
                backend.ensure_model(config)
            return _ready_text(backend)

        return dispatch(self, jobs.Task("start", "Start backend", work, lambda text: text), "Starting the backend...")


class ATLASVAE_OT_backend_restart(bpy.types.Operator):
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

        def work(backend: jobs.Backend) -> str:
            backend.stop()
            backend.ensure(config)
            if config.model_path:
                backend.ensure_model(config)
            return _ready_text(backend)

        return dispatch(self, jobs.Task("start", "Restart backend", work, lambda text: text),
                        "Restarting the backend...")


class ATLASVAE_OT_backend_stop(bpy.types.Operator):
    """Stop the backend process and free all its memory (it starts again on next use)"""

    bl_idname = "atlasvae.backend_stop"
    bl_label = "Stop Backend"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if jobs.backend.client is None:
            cls.poll_message_set("The backend is not running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        def work(backend: jobs.Backend) -> str:
            backend.stop()
            return "Backend stopped"

        return dispatch(self, jobs.Task("stop", "Stop backend", work, lambda text: text), "Stopping the backend...")


class ATLASVAE_OT_release_memory(bpy.types.Operator):
    """Unload the model from the backend and return its memory (it reloads on next use)"""

    bl_idname = "atlasvae.release_memory"
    bl_label = "Release Memory"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not jobs.backend.running:
            cls.poll_message_set("The backend is not running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        def work(backend: jobs.Backend) -> dict[str, Any]:
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


class ATLASVAE_OT_load_model(_ModelOperator):
    """Load the chosen model into the backend now (actions load it anyway when needed)"""

    bl_idname = "atlasvae.load_model"
    bl_label = "Load Model"
    kind = "load"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        config = launch_config(settings(context))

        def work(backend: jobs.Backend) -> str:
            _client, info = backend.ensure_model(config)
            return f"Loaded model {info.get('name')} on {(backend.handshake or {}).get('device', '?')}"

        return dispatch(self, jobs.Task(self.kind, "Load model", work, lambda text: text), "Loading the model...")


class ATLASVAE_OT_refresh_models(bpy.types.Operator):
    """Scan the model folders again (bundled models, the user models folder)"""

    bl_idname = "atlasvae.refresh_models"
    bl_label = "Refresh Models"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        entries = refresh_models()
        self.report({"INFO"}, f"{len(entries)} model(s) found")
        return {"FINISHED"}


class ATLASVAE_OT_report_message(bpy.types.Operator):
    """Show a message from a background reply in the status bar and Info log"""

    bl_idname = "atlasvae.report_message"
    bl_label = "AtlasVAE Message"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=(("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")))
    message: StringProperty()

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        self.report({self.level}, self.message)
        return {"FINISHED"}


def _start_task() -> jobs.Task:
    config = launch_config(None)

    def work(backend: jobs.Backend) -> str:
        backend.ensure(config)
        if config.model_path:
            backend.ensure_model(config)
        return _ready_text(backend)

    return jobs.Task("start", "Start backend", work, lambda text: text)


def _deferred_start() -> None:
    try:
        jobs.run(_start_task())
    except Exception as exc:
        jobs.report("ERROR", f"Start backend failed: {jobs.error_text(exc)}")


def start_on_load() -> None:
    """At register: start the backend when the preference asks for it, outside registration itself
    (a timer in interactive Blender; right away in background mode, where timers never fire)."""
    if not addon_settings().start_on_load:
        return
    if bpy.app.background:
        _deferred_start()
    else:
        bpy.app.timers.register(_deferred_start, first_interval=0.5)


CLASSES = (ATLASVAE_OT_sample, ATLASVAE_OT_reconstruct, ATLASVAE_OT_interpolate, ATLASVAE_OT_variations,
           ATLASVAE_OT_finetune_start, ATLASVAE_OT_finetune_cancel, ATLASVAE_OT_backend_start,
           ATLASVAE_OT_backend_restart, ATLASVAE_OT_backend_stop, ATLASVAE_OT_release_memory,
           ATLASVAE_OT_load_model, ATLASVAE_OT_refresh_models, ATLASVAE_OT_report_message)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    jobs.set_handlers(on_notification, job_watch)


def unregister() -> None:
    jobs.set_handlers(None, None)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
