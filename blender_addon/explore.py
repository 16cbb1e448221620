# mypy: disable-error-code="valid-type"
"""The Shape Explorer in Blender: an AtlasVAE result (sample, reconstruction, variation, interpolation step)
reshaped in place by sliders along its model's main directions, blended toward another selected result,
randomised, reset, and kept as plain mesh data or as a shape key.

Every result stores its latent and frame as custom properties (bpyfree.explorer.Shape), so this works after
the .blend is saved and reopened, whatever model folder the result came from. Dragging a slider sends
`explore` requests with the decoded patches through a Coalescer (at most one in flight, the newest one
waiting) and writes each reply's vertices into the object's mesh from a timer; the drag's end, seen as the
actual LEFTMOUSE release by a modal watcher, asks for the object's own surface (closed or patches) and,
once that reply is in, records ONE undo step. The sliders live on the WindowManager, which Blender's undo
never records, so the UI pushes no step of its own mid-drag; what the slider shows comes from the object's
stored values, which undo restores with the mesh.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.app.handlers import persistent
from bpy.props import FloatProperty, FloatVectorProperty, PointerProperty

from . import feedback, jobs
from .bpyfree import locate
from .bpyfree.backend_process import Backend, LaunchConfig, backend, error_text
from .bpyfree.explorer import (
    DEFAULT_MAX_AMOUNT, LIVE_SURFACE, MAX_SLIDERS, RANDOM_SPREAD, Coalescer, DirectionTable, Position, Request,
    Shape, amounts_of, decode_latent, explore_params, random_amounts, same_model,
)
from .bpyfree.uvs import template_uvs
from .bpyfree.wire import decode_mesh
from .mesh_convert import replace_geometry
from .operators.building import SHARP_ANGLE
from .operators.common import dispatch, fail, launch_config
from .properties import model_entries, settings

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

PREFIX = "atlasvae_"
POLL_S = 0.004  # how often the timer looks for replies while a request is out
SETTLE_TIMEOUT_S = 60.0
TIMINGS_KEPT = 1000  # a session's latest reply timings (a long drag makes thousands)
STATE_KEYS = ("amounts", "blend", "explored_latent", "toward", "toward_name")  # what a commit writes beside the mesh
SHAPE_KEYS = ("latent", "scale", "offset", "frame", "label", "model_path")  # what makes a result explorable
DRAG_EVENTS = {"MOUSEMOVE", "INBETWEEN_MOUSEMOVE", "TIMER", "TIMER_REPORT", "TIMERREGION", "NONE",
               "LEFT_SHIFT", "RIGHT_SHIFT", "LEFT_CTRL", "RIGHT_CTRL", "LEFT_ALT", "RIGHT_ALT", "WINDOW_DEACTIVATE"}
UNDO_MESSAGE = "AtlasVAE: Explore"


# ---- what an object stores ---------------------------------------------------------------------------------
def stored(obj: bpy.types.Object) -> dict[str, Any]:
    """The object's atlasvae_* custom properties, keys without the prefix."""
    return {key[len(PREFIX):]: obj[key] for key in obj.keys() if key.startswith(PREFIX)}


def shape_of(obj: bpy.types.Object | None) -> Shape | None:
    """The explorable result `obj` holds, or None (not a mesh, not a result, or applied as plain mesh)."""
    if obj is None or obj.type != "MESH":
        return None
    return Shape.from_props(stored(obj))


def current_latent(obj: bpy.types.Object) -> np.ndarray | None:
    """The latent of the shape `obj` shows now: the explored one when it was moved, else its own."""
    props = stored(obj)
    for key in ("explored_latent", "latent"):
        if key in props:
            try:
                return np.asarray(list(props[key]), dtype=np.float32)
            except (TypeError, ValueError):
                return None
    return None


def mode_problem(obj: bpy.types.Object | None) -> str:
    """Why `obj` cannot be reshaped now ("" when it can): the Explorer writes the object's mesh, which Edit
    Mode (or any mode but Object Mode) would overwrite with its own copy when it is left."""
    if obj is None or obj.mode == "OBJECT":
        return ""
    return f"{obj.name} is in {obj.mode.replace('_', ' ').title()} Mode: switch to Object Mode to explore it"


def model_folder(shape: Shape) -> str | None:
    """The model folder of a stored result: its recorded path when that is still a model folder, else the
    listed model of the same name (the .blend opened on another machine, or the models folder moved)."""
    if shape.model_path and (Path(shape.model_path) / locate.CONFIG_FILE).is_file():
        return shape.model_path
    entry = next((e for e in model_entries() if e.name == shape.model_name), None)
    return str(entry.path) if entry is not None else None


def toward_object(context: bpy.types.Context, obj: bpy.types.Object) -> bpy.types.Object | None:
    """The other selected result to blend toward: the first selected one that is not `obj` and comes from
    the same model (another model's latent means nothing to this one's decoder)."""
    mine = shape_of(obj)
    for other in context.selected_objects or []:
        theirs = shape_of(other) if other != obj else None
        if mine is not None and theirs is not None and same_model(mine, theirs):
            return other
    return None


def other_model_selected(context: bpy.types.Context, obj: bpy.types.Object) -> bpy.types.Object | None:
    """A selected result of another model than `obj`'s (the panel says why it cannot be a Toward target)."""
    mine = shape_of(obj)
    for other in context.selected_objects or []:
        theirs = shape_of(other) if other != obj else None
        if mine is not None and theirs is not None and not same_model(mine, theirs):
            return other
    return None


# ---- directions --------------------------------------------------------------------------------------------
TableKey = tuple[str, "str | None", "tuple[int, int] | None"]
_tables: dict[TableKey, DirectionTable] = {}
_table_errors: dict[TableKey, str] = {}
_fetching: set[TableKey] = set()


def table_key(folder: str, label: str | None) -> TableKey:
    """What a cached direction table belongs to: the model folder, the family, and the weights' modification
    time and size (a retrain or fine-tune in place rewrites them, and the directions with them)."""
    try:
        st = (Path(folder) / locate.WEIGHTS_FILE).stat()
    except OSError:
        return folder, label, None
    return folder, label, (st.st_mtime_ns, st.st_size)


def _fetch_table(config: LaunchConfig, label: str | None, key: TableKey) -> DirectionTable:
    client, _info = backend.ensure_model(config)
    table = DirectionTable.from_reply(client.call("directions", {"label": label} if label else {}))
    _tables[key] = table
    return table


def directions(config: LaunchConfig, label: str | None, blocking: bool = False) -> DirectionTable | None:
    """The direction table of `config`'s model for `label`: cached, fetched now when `blocking`, else
    fetched on a thread (None until it arrives; the sidebar redraws then). Raises on a failed blocking fetch."""
    assert config.model_path is not None
    key = table_key(config.model_path, label)
    if key in _tables:
        return _tables[key]
    if blocking:
        return _fetch_table(config, label, key)
    if key in _fetching or key in _table_errors:
        return None
    _fetching.add(key)

    def fetch() -> None:
        try:
            _fetch_table(config, label, key)
        except Exception as exc:
            _table_errors[key] = error_text(exc)
        finally:
            _fetching.discard(key)

    def redraw_when_fetched() -> float | None:  # main thread: the sidebar shows the sliders (or the error) then
        if key in _fetching:
            return 0.1
        feedback.tag_redraw()
        return None

    threading.Thread(target=fetch, name="atlasvae-directions", daemon=True).start()
    bpy.app.timers.register(redraw_when_fetched, first_interval=0.1)
    return None


# ---- the live session --------------------------------------------------------------------------------------
@dataclass
class Reply:
    """A finished request with what the main thread needs: decoded arrays or the error."""

    request: Request
    arrays: tuple[np.ndarray, np.ndarray] | None = None
    mesh: dict[str, Any] = field(default_factory=dict)
    uvs: np.ndarray | None = None
    error: str = ""


@dataclass
class Session:
    """The object being explored and what its sliders send; bound to one object (by name and session_uid)."""

    ref: tuple[str, int]
    shape: Shape
    table: DirectionTable
    config: LaunchConfig
    face_budget: int
    amounts: list[float]
    blend: float = 0.0
    toward: np.ndarray | None = None
    toward_name: str = ""
    coalescer: Coalescer = field(default_factory=Coalescer)
    replies: queue.SimpleQueue[Reply] = field(default_factory=queue.SimpleQueue)
    changed_at: dict[int, float] = field(default_factory=dict)  # request serial -> when its slider moved
    timings: deque[tuple[float, float, int]] = field(  # the latest (latency s, apply s, vertices)
        default_factory=lambda: deque(maxlen=TIMINGS_KEPT))

    def find(self) -> bpy.types.Object | None:
        obj = bpy.data.objects.get(self.ref[0])
        return obj if obj is not None and obj.session_uid == self.ref[1] else None

    def idle(self) -> bool:
        """Whether no request is out and no reply waits to be applied."""
        return self.coalescer.idle() and self.replies.empty()


# One session per object still being shaped: the current one (the object last explored) and any other whose
# requests are still out (a release's final reply lands after the artist moved on to another object).
_sessions: dict[tuple[str, int], Session] = {}
_current: list[tuple[str, int] | None] = [None]
_sender: list[ThreadPoolExecutor | None] = [None]
_watching = [False]


def session() -> Session | None:
    """The current session (the object last explored), if any."""
    return _sessions.get(_current[0]) if _current[0] is not None else None


def session_of(obj: bpy.types.Object | None) -> Session | None:
    """The session bound to `obj`, if any."""
    return None if obj is None else _sessions.get((obj.name, obj.session_uid))


def drop_session(ref: tuple[str, int] | None = None) -> None:
    """Forget the session of the object `ref`, or every session (undo, file load): replies still out for
    them are ignored."""
    if ref is None:
        _sessions.clear()
        _current[0] = None
        return
    _sessions.pop(ref, None)
    if _current[0] == ref:
        _current[0] = None


def session_for(context: bpy.types.Context, obj: bpy.types.Object | None, blocking: bool = False
                ) -> Session | None:
    """The live session for `obj`, bound now when it is another object; None when `obj` cannot be explored
    or its directions are not known yet (fetched when `blocking`)."""
    if obj is None:
        return None
    live = session_of(obj)
    if live is not None and (not live.idle()
                             or _tables.get(table_key(str(live.config.model_path), live.shape.label)) is live.table):
        _current[0] = live.ref
        return live  # else the model's weights changed since it was bound: bound again with their directions
    shape = shape_of(obj)
    if shape is None:
        return None
    folder = model_folder(shape)
    if folder is None:
        raise RuntimeError(f"model '{shape.model_name}' of {obj.name} is not in any models folder")
    s = settings(context)
    config = replace(launch_config(s), model_path=folder)
    table = directions(config, shape.label, blocking)
    if table is None:
        return None
    props = stored(obj)
    live = Session(ref=(obj.name, obj.session_uid), shape=shape, table=table, config=config,
                   face_budget=int(s.face_budget if shape.face_budget is None else shape.face_budget),
                   amounts=amounts_of(props.get("amounts", ()), len(table.directions)),
                   blend=float(props.get("blend", 0.0)), toward_name=str(props.get("toward_name", "")))
    if "toward" in props:  # blended at the last commit: the same target latent, whatever is selected now
        live.toward = np.asarray(list(props["toward"]), dtype=np.float32)
    for ref in [ref for ref, other in _sessions.items() if other.idle()]:  # busy ones stay until applied
        del _sessions[ref]
    _sessions[live.ref] = live
    _current[0] = live.ref
    return live


def _send(live: Session, request: Request) -> None:
    """Hand `request` to the sender thread, which makes sure the model is loaded and writes it to the backend;
    its reply comes back on the client's reader thread (on_reply), which sends the next waiting request."""
    sender = _sender[0]
    if sender is None:
        sender = _sender[0] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atlasvae-explore")

    def send() -> None:
        try:
            client, info = backend.ensure_model(live.config)
            uvs = None
            if request.final and request.params.get("surface") == "patches":
                uvs = template_uvs(client, info, int(request.params["resolution"]))
            future = client.submit("explore", request.params)
        except Exception as exc:
            _finished(live, Reply(request, error=error_text(exc)))
            return
        future.add_done_callback(lambda done: _on_reply(live, request, done, uvs))

    sender.submit(send)


def _on_reply(live: Session, request: Request, done: Future[Any], uvs: np.ndarray | None) -> None:
    """Reader thread: decode the reply (numpy only) and queue it for the main thread; send the next one."""
    try:
        mesh = done.result()["mesh"]
        reply = Reply(request, decode_mesh(mesh), {k: v for k, v in mesh.items() if k not in ("vertices", "faces")},
                      uvs)
    except Exception as exc:
        reply = Reply(request, error=error_text(exc))
    _finished(live, reply)


def _finished(live: Session, reply: Reply) -> None:
    live.replies.put(reply)
    following = live.coalescer.finished(reply.request)
    if following is not None:
        _send(live, following)


def push(live: Session, final: bool = False) -> None:
    """Ask for the session's current slider position: the live patches, or (final) the object's own surface."""
    surface = live.shape.surface if final else LIVE_SURFACE
    toward = live.toward if live.blend > 0 else None
    params = explore_params(live.shape, live.table, live.amounts, surface, live.face_budget, toward, live.blend)
    position = Position(tuple(live.amounts), live.blend, None if toward is None else tuple(float(v) for v in toward),
                        live.toward_name if toward is not None else "")
    request, now = live.coalescer.offer(params, final, position)
    live.changed_at[request.serial] = time.perf_counter()
    if now:
        _send(live, request)
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=POLL_S)


def commit(live: Session | None = None) -> None:
    """The drag ended: ask for the object's own surface; its reply records the one undo step."""
    live = live or session()
    if live is not None:
        push(live, final=True)


def _commit_soon() -> None:
    """Commit once Blender has finished handling the event that ended the edit: the slider may still take
    its last value then (or its old one back, on Esc or a right click)."""
    def later() -> None:
        commit()
    bpy.app.timers.register(later, first_interval=0.0)


def tick() -> float | None:
    """Timer: apply every reply that came in, for every session; come back soon while requests are out.
    A session other than the current one is forgotten once it is idle."""
    for live in list(_sessions.values()):
        while _sessions.get(live.ref) is live:
            try:
                reply = live.replies.get_nowait()
            except queue.Empty:
                break
            _apply(live, reply)
        if live.ref != _current[0] and _sessions.get(live.ref) is live and live.idle():
            del _sessions[live.ref]
    return None if all(live.idle() for live in _sessions.values()) else POLL_S


def settle(timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Apply replies until nothing is out (background mode and scripts, where the timer does not run)."""
    deadline = time.monotonic() + timeout
    while not all(live.idle() for live in list(_sessions.values())):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the backend did not answer the Explorer within {timeout:g} s")
        tick()
        time.sleep(0.001)


def _apply(live: Session, reply: Reply) -> None:
    """Write a reply's shape into the object (main thread); a final one also stores the state and records
    one undo step."""
    obj = live.find()
    if obj is None:
        drop_session(live.ref)
        return
    if mode_problem(obj) and not reply.error:
        reply = replace(reply, error=f"{mode_problem(obj)} (its last change was not applied)")
    if reply.error or reply.arrays is None:
        feedback.report("ERROR", f"Exploring {obj.name} failed: {reply.error}")
        return
    started = time.perf_counter()
    vertices, faces = reply.arrays
    mesh = own_mesh(obj)
    closed = reply.mesh.get("surface") == "closed"
    before = (len(mesh.vertices), len(mesh.polygons))
    replace_geometry(mesh, live.shape.to_local(vertices), faces)
    if before != (len(vertices), len(faces)):  # a new surface: shade as a new result of its kind would be
        mesh.shade_smooth()
        if closed:
            mesh.set_sharp_from_angle(angle=SHARP_ANGLE)
        elif reply.uvs is not None and len(reply.uvs) == len(mesh.loops):
            layer = mesh.uv_layers.get("UVMap") or mesh.uv_layers.new(name="UVMap")
            assert layer is not None
            layer.data.foreach_set("uv", np.ascontiguousarray(reply.uvs, dtype=np.float32).ravel())
    changed = live.changed_at.pop(reply.request.serial, None)
    for serial in [n for n in live.changed_at if n < reply.request.serial]:  # replaced before they were sent
        del live.changed_at[serial]
    applied = time.perf_counter()
    if changed is not None:
        live.timings.append((applied - changed, applied - started, len(vertices)))
    if reply.request.final:
        _store(obj, live, reply)
    feedback.tag_redraw()


def own_mesh(obj: bpy.types.Object) -> bpy.types.Mesh:
    """`obj`'s mesh, made single-user first when other objects share it (a linked duplicate, Alt+D), so
    reshaping this object leaves the others as they are."""
    mesh = obj.data
    assert isinstance(mesh, bpy.types.Mesh)
    if mesh.users > 1:
        copy = mesh.copy()
        assert isinstance(copy, bpy.types.Mesh)
        obj.data = copy
        return copy
    return mesh


def _store(obj: bpy.types.Object, live: Session, reply: Reply) -> None:
    """Keep the committed state on the object (saved with the .blend, restored by undo): the slider values
    the reply's request was made from, so they match its mesh; record one undo step, unless the sliders are
    where the last commit left them (an Esc-cancelled drag, say)."""
    before = _state(obj, len(live.table.directions))
    position = reply.request.position
    obj[PREFIX + "amounts"] = list(position.amounts)
    obj[PREFIX + "blend"] = float(position.blend)
    obj[PREFIX + "toward_name"] = position.toward_name
    if position.toward is not None:
        obj[PREFIX + "toward"] = list(position.toward)
    elif PREFIX + "toward" in obj.keys():
        del obj[PREFIX + "toward"]
    if "latent" in reply.mesh:
        obj[PREFIX + "explored_latent"] = [float(v) for v in decode_latent(reply.mesh["latent"], "reply latent")]
    if _state(obj, len(live.table.directions)) != before:
        jobs.undo_push(UNDO_MESSAGE)


def _state(obj: bpy.types.Object, count: int) -> tuple[tuple[float, ...], float, tuple[float, ...]]:
    """What decides an object's explored shape: its slider values, its blend and the blend's target."""
    blend = float(obj.get(PREFIX + "blend", 0.0))
    toward = tuple(float(v) for v in obj.get(PREFIX + "toward", ())) if blend > 0 else ()
    return tuple(amounts_of(obj.get(PREFIX + "amounts", ()), count)), blend, toward


# ---- the sliders -------------------------------------------------------------------------------------------
def _active(context: bpy.types.Context | None = None) -> bpy.types.Object | None:
    ctx = context or bpy.context
    return getattr(ctx, "active_object", None)


def _get_amounts(_self: Any) -> list[float]:
    obj = _active()
    live = session_of(obj)
    if obj is not None and live is not None:
        return amounts_of(live.amounts, MAX_SLIDERS)
    return amounts_of(obj.get(PREFIX + "amounts", ()) if obj is not None else (), MAX_SLIDERS)


def _set_amounts(_self: Any, values: Any) -> None:
    live = _live_for_edit()
    if live is None:
        return
    new = amounts_of(values, len(live.table.directions))
    if new != live.amounts:
        live.amounts = new
        _push_edit(live)


def _get_blend(_self: Any) -> float:
    obj = _active()
    live = session_of(obj)
    if obj is not None and live is not None:
        return live.blend
    return float(obj.get(PREFIX + "blend", 0.0)) if obj is not None else 0.0


def _set_blend(_self: Any, value: float) -> None:
    live = _live_for_edit()
    if live is None:
        return
    obj = live.find()
    other = toward_object(bpy.context, obj) if obj is not None else None
    if other is not None:
        live.toward, live.toward_name = current_latent(other), other.name
    if live.toward is None or float(value) == live.blend:
        return
    live.blend = float(value)
    _push_edit(live)


def _live_for_edit() -> Session | None:
    """The active result's session for a slider change; None (the reason reported) when there is none."""
    problem = mode_problem(_active())
    if problem:
        feedback.report("ERROR", f"Explorer: {problem}")
        return None
    try:
        return session_for(bpy.context, _active(), blocking=jobs.blocking_default())
    except Exception as exc:  # a property setter must not raise: Blender would print a bare traceback
        feedback.report("ERROR", f"Explorer: {error_text(exc)}")
        return None


def _push_edit(live: Session) -> None:
    """Send a slider change and follow the drag; a failure is reported in the panel and Info, not raised."""
    try:
        push(live)
    except Exception as exc:
        feedback.report("ERROR", f"Explorer: {error_text(exc)}")
        return
    _watch_release()


def _watch_release() -> None:
    """Follow the drag to its LEFTMOUSE release with a modal watcher (a window only); scripts commit
    themselves (atlasvae.explore_commit)."""
    if _watching[0] or bpy.app.background:
        return
    try:
        bpy.ops.atlasvae.explore_watch("INVOKE_DEFAULT")  # type: ignore[attr-defined]
    except RuntimeError as exc:  # no window to watch in: the change is its own step
        print(f"AtlasVAE: cannot follow the slider ({exc}); committing now")
        commit()


class AtlasVAEExplorer(bpy.types.PropertyGroup):
    """The Explorer's sliders. They live on the WindowManager (never undone, so Blender records no undo step
    mid-drag) and read and write the live session or the active object's stored values."""

    amounts: FloatVectorProperty(name="Directions", description="How far along each of the model's main "
                                 "directions, in standard deviations of its training shapes",
                                 size=MAX_SLIDERS, min=-DEFAULT_MAX_AMOUNT, max=DEFAULT_MAX_AMOUNT,
                                 get=_get_amounts, set=_set_amounts, options={"SKIP_SAVE"})
    blend: FloatProperty(name="Toward", description="Blend toward the other selected result: 0 is this shape, "
                         "1 that one", min=0.0, max=1.0, subtype="FACTOR", get=_get_blend, set=_set_blend,
                         options={"SKIP_SAVE"})


# ---- operators ---------------------------------------------------------------------------------------------
class ATLASVAE_OT_explore_watch(bpy.types.Operator):
    """Follow an Explorer slider drag until the mouse button is released, then ask for the final surface"""

    bl_idname = "atlasvae.explore_watch"
    bl_label = "Follow Explorer Slider"
    bl_options = {"INTERNAL"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        dragging = event.type in DRAG_EVENTS or (event.type == "LEFTMOUSE" and event.value == "PRESS")
        if not dragging or context.window is None or context.window_manager is None:
            _commit_soon()  # a typed value, Ctrl+wheel, Backspace: one change, one step
            return {"FINISHED"}
        _watching[0] = True
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        released = event.type == "LEFTMOUSE" and event.value == "RELEASE"
        if released or (event.type not in DRAG_EVENTS and event.value in ("PRESS", "RELEASE")):
            _watching[0] = False
            _commit_soon()
            return {"FINISHED", "PASS_THROUGH"}
        return {"PASS_THROUGH"}

    def cancel(self, context: bpy.types.Context) -> None:
        _watching[0] = False


class ATLASVAE_OT_explore_retry(bpy.types.Operator):
    """Ask the backend for the model's directions again (after it failed to give them)"""

    bl_idname = "atlasvae.explore_retry"
    bl_label = "Retry"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        _table_errors.clear()
        feedback.tag_redraw()
        return {"FINISHED"}


class _ExplorerOperator(bpy.types.Operator):
    """Shared poll: the active object is an explorable result whose last move has been applied."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = _active(context)
        if shape_of(obj) is None:
            cls.poll_message_set("Make an AtlasVAE result (sample, reconstruction, variation) active")
            return False
        if mode_problem(obj):
            cls.poll_message_set(mode_problem(obj))
            return False
        live = session_of(obj)
        if live is not None and not live.coalescer.idle():
            cls.poll_message_set("The last change is still being shaped")
            return False
        return True

    def live(self, context: bpy.types.Context) -> Session:
        """The session of the active result (directions fetched now when missing)."""
        live = session_for(context, _active(context), blocking=True)
        if live is None:
            raise RuntimeError("the active object cannot be explored")
        return live


class ATLASVAE_OT_explore_commit(_ExplorerOperator):
    """Finish the Explorer's last change with the object's own surface and one undo step (slider release does it)"""

    bl_idname = "atlasvae.explore_commit"
    bl_label = "Finish Explorer Change"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = _active(context)
        if mode_problem(obj):
            cls.poll_message_set(mode_problem(obj))
            return False
        return shape_of(obj) is not None

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        try:
            commit(self.live(context))
            if jobs.blocking_default():
                settle()
        except Exception as exc:
            self.report({"ERROR"}, f"Explorer failed: {error_text(exc)}")
            return {"CANCELLED"}
        return {"FINISHED"}


class ATLASVAE_OT_explore_randomise(_ExplorerOperator):
    """Set every slider to a random draw of about one standard deviation (normal), away from the result as made"""

    bl_idname = "atlasvae.explore_randomise"
    bl_label = "Randomise"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        return _jump(self, context, lambda live: random_amounts(live.table, np.random.default_rng(), RANDOM_SPREAD),
                     None)


class ATLASVAE_OT_explore_reset(_ExplorerOperator):
    """Every slider and Toward back to 0: the result as it was made"""

    bl_idname = "atlasvae.explore_reset"
    bl_label = "Reset"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        return _jump(self, context, lambda live: [0.0] * len(live.table.directions), 0.0)


def _jump(op: bpy.types.Operator, context: bpy.types.Context, amounts: Any, blend: float | None
          ) -> set[OperatorReturnItems]:
    """Set the sliders at once and ask for the final shape (one undo step when it is in)."""
    try:
        live = op.live(context)  # type: ignore[attr-defined]
        live.amounts = list(amounts(live))
        if blend is not None:
            live.blend = blend
        commit(live)
        if jobs.blocking_default():
            settle()
    except Exception as exc:
        op.report({"ERROR"}, f"{op.bl_label} failed: {error_text(exc)}")
        return {"CANCELLED"}
    return {"FINISHED"}


def _forget_shape(obj: bpy.types.Object) -> None:
    """Remove what makes `obj` explorable, so it is plain mesh data (its other AtlasVAE facts stay)."""
    for key in (*SHAPE_KEYS, *STATE_KEYS):
        if PREFIX + key in obj.keys():
            del obj[PREFIX + key]
    drop_session((obj.name, obj.session_uid))


class ATLASVAE_OT_explore_apply(_ExplorerOperator):
    """Keep the shape as it is now as plain mesh data (the Explorer no longer reshapes this object)"""

    bl_idname = "atlasvae.explore_apply"
    bl_label = "Apply"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        obj = _active(context)
        assert obj is not None
        _forget_shape(obj)
        self.report({"INFO"}, f"Kept the explored shape of {obj.name} as plain mesh data")
        return {"FINISHED"}


class ATLASVAE_OT_explore_shape_key(_ExplorerOperator):
    """Keep the result as made as the Basis and the explored shape as a shape key, to animate between them"""

    bl_idname = "atlasvae.explore_shape_key"
    bl_label = "Apply as Shape Key"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        obj = _active(context)
        assert obj is not None
        ref = (obj.name, obj.session_uid)
        try:
            live = self.live(context)
            toward = live.toward if live.blend > 0 else None
            zero = [0.0] * len(live.table.directions)
            original = explore_params(live.shape, live.table, zero, "patches", live.face_budget)
            explored = explore_params(live.shape, live.table, live.amounts, "patches", live.face_budget, toward,
                                      live.blend)
        except Exception as exc:
            return fail(self, f"Apply as Shape Key failed: {error_text(exc)}")
        config, shape = live.config, live.shape

        def work(task: jobs.Task, backend: Backend) -> tuple[Any, Any]:
            task.advance(0.0, f"Shaping {ref[0]} as made and as explored...")
            client, _info = backend.ensure_model(config)
            return (decode_mesh(client.call("explore", original)["mesh"]),
                    decode_mesh(client.call("explore", explored)["mesh"]))

        def apply(result: tuple[Any, Any]) -> str:
            (base_v, base_f), (moved_v, _moved_f) = result
            target = bpy.data.objects.get(ref[0])
            if target is None or target.session_uid != ref[1]:
                raise RuntimeError(f"{ref[0]} was removed before its shape key was made")
            mesh = own_mesh(target)
            if mesh.shape_keys is not None:
                target.shape_key_clear()
            replace_geometry(mesh, shape.to_local(base_v), base_f)
            mesh.shade_smooth()
            target.shape_key_add(name="Basis", from_mix=False)
            key = target.shape_key_add(name="Explored", from_mix=False)
            key.data.foreach_set("co", np.ascontiguousarray(shape.to_local(moved_v), dtype=np.float32).ravel())
            key.value = 1.0
            target[PREFIX + "surface"] = "patches"
            _forget_shape(target)
            if jobs.applying_in_timer() or bpy.app.background:  # else the operator's own step records it
                jobs.undo_push("AtlasVAE: Apply as Shape Key")
            return f"{ref[0]}: the result as made is the Basis, the explored shape the key 'Explored'"

        task = jobs.Task(self.bl_idname, "Apply as Shape Key", work, apply)
        return dispatch(self, task, f"Making the shape key of {ref[0]}...")


# ---- the panel ---------------------------------------------------------------------------------------------
class VIEW3D_PT_atlasvae_explore(bpy.types.Panel):
    """Explorer: sliders along the model's main directions for the active result."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "AtlasVAE"
    bl_label = "Explorer"
    bl_idname = "VIEW3D_PT_atlasvae_explore"
    bl_parent_id = "VIEW3D_PT_atlasvae"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "atlasvae")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None
        obj = _active(context)
        shape = shape_of(obj)
        if obj is None or shape is None:
            text = ("Select an AtlasVAE result (a sample, reconstruction or variation) to reshape it here"
                    if obj is None or PREFIX + "model" not in obj.keys() else
                    f"{obj.name} keeps no shape code (applied, or made before the Explorer): reconstruct it "
                    "to explore it")
            for line in feedback.wrap(text):
                layout.label(text=line)
            return
        if mode_problem(obj):
            for i, line in enumerate(feedback.wrap(mode_problem(obj))):
                layout.label(text=line, icon="INFO" if i == 0 else "BLANK1")
            return
        folder = model_folder(shape)
        if folder is None:
            layout.label(text=f"Model '{shape.model_name}' not found", icon="ERROR")
            return
        key = table_key(folder, shape.label)
        table = _tables.get(key)  # every redraw of a drag: the cache first, the launch config only on a miss
        if table is None:
            table = directions(replace(launch_config(settings(context)), model_path=folder), shape.label)
        if table is None:
            error = _table_errors.get(key)
            if error:
                for i, line in enumerate(feedback.wrap(f"No directions: {error}")):
                    layout.label(text=line, icon="ERROR" if i == 0 else "NONE")
                layout.operator("atlasvae.explore_retry", icon="FILE_REFRESH")
            else:
                layout.label(text="Loading the model's directions...", icon="SORTTIME")
            return
        if obj.get(PREFIX + "fit") == "full":  # its latent belongs to a private decoder copy, not the model's
            for i, line in enumerate(feedback.wrap("A Full fit: the sliders reshape the model's own version of it")):
                layout.label(text=line, icon="INFO" if i == 0 else "BLANK1")
        layout.use_property_split = True
        layout.use_property_decorate = False
        explorer = context.window_manager.atlasvae_explorer  # type: ignore[union-attr]
        col = layout.column(align=True)
        for i, direction in enumerate(table.directions):
            col.prop(explorer, "amounts", index=i, text=direction.description, slider=True)
        other = toward_object(context, obj)
        row = layout.row()
        row.active = other is not None
        row.prop(explorer, "blend", slider=True)
        if other is not None:
            layout.label(text=f"Toward: {other.name}", icon="FORWARD")
        else:
            foreign = other_model_selected(context, obj)
            if foreign is not None:
                for i, line in enumerate(feedback.wrap(f"{foreign.name} is from another model: Toward needs a "
                                                       f"result of {shape.model_name or 'this model'}")):
                    layout.label(text=line, icon="INFO" if i == 0 else "BLANK1")
        row = layout.row(align=True)
        row.operator("atlasvae.explore_randomise", icon="FILE_REFRESH")
        row.operator("atlasvae.explore_reset", icon="LOOP_BACK")
        row = layout.row(align=True)
        row.operator("atlasvae.explore_apply", icon="CHECKMARK")
        row.operator("atlasvae.explore_shape_key", icon="SHAPEKEY_DATA")


# ---- registration ------------------------------------------------------------------------------------------
@persistent
def _forget_on_undo(*_args: Any) -> None:
    """Undo, redo or a file load restored the objects: the session's amounts are stale, the object's are not."""
    drop_session()


HANDLERS = (bpy.app.handlers.undo_post, bpy.app.handlers.redo_post, bpy.app.handlers.load_post)
CLASSES = (AtlasVAEExplorer, ATLASVAE_OT_explore_watch, ATLASVAE_OT_explore_retry, ATLASVAE_OT_explore_commit,
           ATLASVAE_OT_explore_randomise, ATLASVAE_OT_explore_reset, ATLASVAE_OT_explore_apply,
           ATLASVAE_OT_explore_shape_key, VIEW3D_PT_atlasvae_explore)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.atlasvae_explorer = PointerProperty(type=AtlasVAEExplorer)  # type: ignore[attr-defined]
    for handlers in HANDLERS:
        handlers.append(_forget_on_undo)


def unregister() -> None:
    for handlers in HANDLERS:
        if _forget_on_undo in handlers:
            handlers.remove(_forget_on_undo)
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    drop_session()
    if _sender[0] is not None:
        _sender[0].shutdown(wait=False, cancel_futures=True)
        _sender[0] = None
    _tables.clear()
    _table_errors.clear()
    del bpy.types.WindowManager.atlasvae_explorer  # type: ignore[attr-defined]
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
