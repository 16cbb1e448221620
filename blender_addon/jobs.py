"""The add-on's work queue: run requests to the one backend (bpyfree/backend_process.py, started on
demand) off the main thread, and hand the replies back to Blender's main thread from a bpy.app.timers
function, which reports them through feedback.py.

In interactive Blender a request runs on a worker thread (starting the backend if needed) and its
result is applied by the timer, which exists only while work is pending. A result that makes many
objects is applied in steps (Steps) spread over timer calls, each call stopping once APPLY_BUDGET_S
of main-thread time is spent, so Blender never freezes for long. In background mode
(bpy.app.background, where timers never fire) a request runs to completion inside the operator.
No bpy data is touched off the main thread: worker functions only talk to the backend.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Hashable

import bpy

from . import feedback
from .bpyfree.backend_process import Backend, backend, error_text
from .bpyfree.client import BackendClient
from .runtime import runtime

TICK_S = 0.1
FIT_POLL_S = 0.1  # how often a worker waiting on a request-time fit checks for a cancel
APPLY_BUDGET_S = 0.025  # a timer call starts no further apply step once it has run this long
APPLY_INTERVAL_S = 0.01  # pause between timer calls while a result is being applied in steps

Steps = Generator[float | None, None, str]
"""An apply that works in pieces: it yields after each piece of main-thread work (one object, say),
optionally the fraction of the apply done so far, and returns the message to report. The timer resumes
it across calls; background mode runs it through."""

clock: Callable[[], float] = time.perf_counter  # what the apply budget is measured with


@dataclass
class Task:
    """One request: `work` runs against the started backend off the main thread (interactive) and
    returns plain data; `apply` turns that data into Blender objects on the main thread and returns
    the message to report, or Steps that do so piece by piece. `kind` lets operators grey out while
    the same kind is pending (until its result is fully applied); `on_error` (main thread) undoes any
    state the operator set before submitting."""

    kind: str
    label: str
    work: Callable[["Task", "Backend"], Any]
    apply: Callable[[Any], str | Steps]
    on_error: Callable[[BaseException], None] | None = None
    future: Future[Any] | None = field(default=None, repr=False)
    steps: Steps | None = field(default=None, repr=False)  # an apply under way in interactive mode
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    work_done: float = 0.0  # fraction of the backend work finished (the worker updates it)
    applied: float = 0.0  # fraction of the result applied (the Steps' yields)
    text: str = ""  # what the task is doing now, for the progress bar
    on_main_thread: bool = False  # run blocking: progress may go straight to the window manager
    fit_job: str = ""  # the backend's job id for that fit, from its "start" event (cancel names it)
    fit_fraction: float = 0.0  # the fit's own progress, from its step events
    content: Hashable = None  # what the backend is asked (model, seed, meshes...): equal content, equal result
    reuse: bool = False  # take the result of the last task of this kind when its content is equal (F9)

    def advance(self, done: float, text: str = "") -> None:
        """Worker side: record progress; raise Cancelled if the user cancelled (checked between requests)."""
        if self.cancelled.is_set():
            raise Cancelled(f"{self.label} cancelled")
        self.work_done = min(1.0, max(0.0, done))
        if text:
            self.text = text
        if self.on_main_thread:
            feedback.wm_progress(self.progress)

    @property
    def progress(self) -> float:
        """Overall fraction done: backend work counts for 80 %, building the result for 20 %."""
        return 0.8 * self.work_done + 0.2 * self.applied


class Cancelled(Exception):
    """The user cancelled the task; nothing of it is left in the scene."""


_last_result: dict[str, tuple[Hashable, Any]] = {}  # per kind: the content and work result of its last task


def _keep(task: Task, result: Any) -> Any:
    """Remember `result` as the answer to `task`'s content (tasks that name none are not kept)."""
    if task.content is not None:
        _last_result[task.kind] = (task.content, result)
    return result


def reusable(task: Task) -> bool:
    """Whether the last task of `task`'s kind asked the backend exactly what `task` asks (its content), so
    its answer can be rebuilt without a new request."""
    last = _last_result.get(task.kind)
    return task.content is not None and last is not None and last[0] == task.content


def _work(task: Task) -> Any:
    """The task's work result: the last one of its kind when the task asks to reuse it and its content is
    the same (F9 changing only how results look rebuilds them without asking the backend), else new."""
    if task.reuse and reusable(task):
        return _last_result[task.kind][1]
    return _keep(task, task.work(task, backend))


_pending: list[Task] = []
_executor: ThreadPoolExecutor | None = None
_notification_handler: Callable[[dict[str, Any]], None] | None = None
_fitting: dict[int, Task] = {}  # by request id: tasks whose worker waits on a request-time fit (the timer pumps)
_idle_check: Callable[[], bool] | None = None


def set_handlers(on_notification: Callable[[dict[str, Any]], None] | None,
                 keep_ticking: Callable[[], bool] | None) -> None:
    """Install the main-thread notification handler and the "is a job still running" check."""
    global _notification_handler, _idle_check
    _notification_handler = on_notification
    _idle_check = keep_ticking


def pending_kinds() -> set[str]:
    """Kinds of requests submitted and not yet applied (interactive mode only)."""
    return {task.kind for task in _pending}


def blocking_default() -> bool:
    """Whether requests run inline: in background mode, where timers never fire."""
    return bool(bpy.app.background)


def complete(outcome: str | Steps, task: Task | None = None) -> str:
    """The message of an apply run to its end now: all of its steps at once (blocking mode), showing
    `task`'s progress in the window manager as it goes."""
    if isinstance(outcome, str):
        return outcome
    while True:
        try:
            fraction = next(outcome)
        except StopIteration as stop:
            return str(stop.value)
        if task is not None and fraction is not None:
            task.applied = float(fraction)
            feedback.wm_progress(task.progress)


def run(task: Task, blocking: bool | None = None) -> str | None:
    """Blocking (default in background mode): do the task now and return its message; exceptions
    propagate to the operator. Otherwise queue it and return None; the timer applies and reports it."""
    global _executor
    if blocking_default() if blocking is None else blocking:
        wm = bpy.context.window_manager
        if wm is not None:
            wm.progress_begin(0.0, 1.0)
        task.on_main_thread = True
        try:
            return complete(task.apply(_work(task)), task)
        finally:
            if wm is not None:
                wm.progress_end()
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="atlasvae")
    task.text = task.text or f"{task.label}..."
    task.future = _executor.submit(task.work, task, backend)
    _pending.append(task)
    _show_progress()
    ensure_timer()
    return None


def supersede(task: Task) -> None:
    """Queue `task` in place of the pending tasks of its kind (an F9 change asked for a new answer while the
    previous one is still under way): those are cancelled as by Cancel, leaving nothing in the scene."""
    dropped = cancel(task.kind)
    if dropped:
        print(f"AtlasVAE: {', '.join(dropped)} replaced by a new request")
    run(task, blocking=False)


def pending() -> list[Task]:
    """Requests submitted and not yet applied, oldest first (interactive mode)."""
    return list(_pending)


def cancel(kind: str | None = None) -> list[str]:
    """Cancel pending tasks (of `kind`, or all): a result not yet applied is dropped, one being applied
    is rolled back (its Steps remove what they built), so the scene is left as it was. The backend
    may finish the request it is on; its answer is ignored. Returns the labels cancelled."""
    labels = []
    for task in [t for t in _pending if kind is None or t.kind == kind]:
        task.cancelled.set()
        steps, task.steps = task.steps, None
        _finish(task)
        if steps is not None:
            steps.close()
        if task.on_error is not None:
            task.on_error(Cancelled(f"{task.label} cancelled"))
        labels.append(task.label)
    _show_progress()
    return labels


def ensure_timer() -> None:
    """Register the dispatch timer unless it is already registered (it never fires in background mode)."""
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK_S, persistent=True)  # survive loading a file


def pump_notifications() -> None:
    """Hand every queued backend notification to the handler (main thread only); a request-time fit's
    progress goes to the task waiting on it."""
    for message in backend.drain():
        if _route_fit(message):
            continue
        if _notification_handler is not None:
            _notification_handler(message)


def _route_fit(message: dict[str, Any]) -> bool:
    """A request-time fit's progress or job_done (the backend names the request it belongs to by
    `request_id`): note its job id and fraction on the task that sent that request (cancelled ones too,
    so their cancel reaches the backend). False for other notifications (a fine-tune's name no request)."""
    params = message.get("params")
    if message.get("method") not in ("progress", "job_done") or not isinstance(params, dict) \
            or params.get("request_id") is None:
        return False
    job = str(params.get("job_id", ""))
    task = _fitting.get(params["request_id"])
    if task is not None and message.get("method") == "progress":
        task.fit_job = job  # every event names it: a "start" pumped before the worker registered is not needed
        if isinstance(params.get("step"), int) and params.get("steps"):
            task.fit_fraction = min(1.0, params["step"] / params["steps"])
    return True


def call_fitting(task: Task, client: BackendClient, method: str, params: dict[str, Any],
                 done: float = 0.0, share: float = 1.0, text: str = "") -> Any:
    """Worker side: a request that may fit at request time. Progress moves from `done` by `share` as
    the fit's step events arrive; a cancel is sent to the backend's fit job, which stops within a step."""
    if task.on_main_thread:
        return client.call(method, params)
    task.fit_job, task.fit_fraction = "", 0.0
    future = client.submit(method, params)
    request_id = future.request_id
    if request_id is not None:
        _fitting[request_id] = task
    sent_cancel = False
    try:
        while True:
            try:
                return future.result(timeout=FIT_POLL_S)
            except FutureTimeout:
                pass
            if task.cancelled.is_set() and task.fit_job and not sent_cancel:
                client.submit("cancel", {"job_id": task.fit_job})
                sent_cancel = True
            task.work_done = min(1.0, done + share * task.fit_fraction)
            if text:
                task.text = f"{text} ({task.fit_fraction:.0%})"
    finally:
        if request_id is not None:
            _fitting.pop(request_id, None)


_in_timer = [False]  # True while tick() applies results, outside any operator


def applying_in_timer() -> bool:
    """Whether a result is being applied by the timer (so it must record its own undo step)."""
    return _in_timer[0]


def _ready(task: Task) -> bool:
    return task.future is not None and task.future.done()


def tick() -> float | None:
    """Timer body: apply finished tasks within this call's budget, pump notifications, redraw; come
    back soon while results wait to be applied; unregister when idle.

    Applies run in submission order. The first step of the first ready task always runs (so every
    call makes progress); after that no step starts once APPLY_BUDGET_S has passed, so a call lasts
    about the budget plus one step (one object), whatever the size of the result."""
    started = clock()
    _in_timer[0] = True
    try:
        for i, task in enumerate([t for t in _pending if _ready(t)]):
            if i and clock() - started >= APPLY_BUDGET_S:
                break
            if not _advance(task, started):
                break
    finally:
        _in_timer[0] = False
    try:
        pump_notifications()
    except Exception as exc:
        feedback.report("ERROR", f"Reading backend progress failed: {error_text(exc)}")
    _show_progress()
    feedback.tag_redraw()
    if any(_ready(t) for t in _pending):
        return APPLY_INTERVAL_S
    busy = bool(_pending) or bool(_fitting) or (_idle_check is not None and _idle_check())
    return TICK_S if busy else None


def _advance(task: Task, started: float) -> bool:
    """Apply `task`'s result step by step until it ends (report it, drop the task: True) or this call,
    begun at `started`, has used its budget (False, the task stays pending for the next call)."""
    assert task.future is not None
    try:
        if task.steps is None:
            outcome = task.apply(_keep(task, task.future.result()))
            if isinstance(outcome, str):
                _finish(task)
                feedback.report("INFO", outcome)
                return True
            task.steps = outcome
        while True:
            try:
                fraction = next(task.steps)
            except StopIteration as stop:
                _finish(task)
                feedback.report("INFO", str(stop.value))
                return True
            if fraction is not None:
                task.applied = float(fraction)
            if clock() - started >= APPLY_BUDGET_S:
                return False
    except Exception as exc:
        _finish(task)
        if task.on_error is not None:
            task.on_error(exc)
        feedback.report("ERROR", f"{task.label} failed: {error_text(exc)}", feedback.fix_for(exc))
        return True


def _finish(task: Task) -> None:
    task.steps = None
    if task in _pending:
        _pending.remove(task)


_progress_shown = [False]  # whether the window manager's progress cursor is up


def _show_progress() -> None:
    """Mirror the oldest pending task in the runtime state (the panel's bar) and the window manager's
    progress indicator; clear both once nothing is pending."""
    state = runtime()
    wm = bpy.context.window_manager
    task = _pending[0] if _pending else None
    if state is not None:
        state.task_label = task.label if task is not None else ""
        state.task_text = (task.text or task.label) if task is not None else ""
        state.task_progress = task.progress if task is not None else 0.0
    if wm is None:
        return
    if task is not None:
        if not _progress_shown[0]:
            wm.progress_begin(0.0, 1.0)
            _progress_shown[0] = True
        wm.progress_update(task.progress)
    elif _progress_shown[0]:
        wm.progress_end()
        _progress_shown[0] = False


def undo_push(message: str) -> None:
    """Record an undo step for objects added outside an operator's own undo handling."""
    window = feedback.any_window()
    try:
        if window is not None:
            with bpy.context.temp_override(window=window):
                bpy.ops.ed.undo_push(message=message)
        else:
            bpy.ops.ed.undo_push(message=message)
    except RuntimeError as exc:
        print(f"AtlasVAE: could not record undo step '{message}' ({exc})")


def drop_pending() -> None:
    """Forget every queued request. A result being applied in steps is closed, not finished: its
    Steps must then remove what they built (operators.build_objects does), so no half-built result is
    left behind; its message is printed, not reported (the add-on is going away)."""
    for task in list(_pending):
        steps, task.steps = task.steps, None
        if steps is None:
            continue
        try:
            steps.close()
        except Exception as exc:  # unregistering must go on whatever a half-applied result does
            print(f"AtlasVAE: removing the partial result of {task.label} failed: {exc}")
        else:
            print(f"AtlasVAE: {task.label} interrupted; the objects it had added so far were removed")
    _pending.clear()
    _show_progress()


def shutdown() -> None:
    """Stop the timer, drop queued work (removing a half-applied result) and stop the backend
    (unregister and Blender exit)."""
    global _executor
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    drop_pending()
    if _executor is not None:
        _executor.shutdown(wait=False, cancel_futures=True)
        _executor = None
    backend.stop()
