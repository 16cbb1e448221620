"""`serve`: the stdio JSON-RPC backend the Blender add-on drives (see docs/architecture.md, wire protocol).

stdin carries one request a line; stdout carries only protocol lines (the process's own fd 1 is pointed
at stderr so stray prints from libraries cannot corrupt the channel). Control methods are answered on
the reader thread, model methods run one at a time on a model thread, and a fine-tune runs on a job
thread, so cancel and job_status stay responsive while the model or a job is busy. No network listener.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from backend import PROTOCOL_VERSION, __version__
from backend.errors import AtlasError, BusyError
from backend.limits import (
    DEVICE_CHOICES, FIT_MODES, MAX_COUNT, MAX_FIT_STEPS, MAX_RESOLUTION, MAX_SEED, MAX_STEPS, MIN_FIT_STEPS,
    MIN_RESOLUTION, MIN_STEPS, PRIOR_KINDS, SHARED_DECODER_FITS,
)
from backend.protocol import (
    BACKEND_ERROR, BUSY, CANCELLED, ID_SCAN_BYTES, INVALID_REQUEST, METHOD_NOT_FOUND, NO_MODEL, OUT_OF_MEMORY,
    Param, Request, RpcError, encode_mesh, error_line, invalid_params, notification_line, parse_request,
    recover_id, result_line, validate_params,
)

if TYPE_CHECKING:
    from backend.service import ModelService  # imports torch: the server loads it only when serving

log = logging.getLogger("atlasvae.server")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
PARENT_POLL_S = 0.5
JOB_STOP_WAIT_S = 60.0
MODEL_STOP_WAIT_S = 10.0
STEP_EVENT_INTERVAL_S = 0.2
KEEP_FINISHED_FITS = 16

_RESOLUTION = Param("resolution", "int", default=2562, minimum=MIN_RESOLUTION, maximum=MAX_RESOLUTION)
_SEED = Param("seed", "int", default=0, minimum=0, maximum=MAX_SEED)
# Wire default "encoder": clients that do not ask for a fit get the one-pass answer they always got.
_SHARED_FIT = [Param("fit", "str", default="encoder", choices=SHARED_DECODER_FITS),
               Param("fit_steps", "int", minimum=MIN_FIT_STEPS, maximum=MAX_FIT_STEPS)]

SPECS: dict[str, list[Param]] = {
    "handshake": [],
    "list_models": [],
    "load_model": [Param("path", "str", required=True)],
    "sample": [Param("count", "int", default=1, minimum=1, maximum=MAX_COUNT), _SEED,
               Param("temperature", "float", default=1.0, minimum=0.0, maximum=10.0), _RESOLUTION,
               Param("prior", "str", default="auto", choices=PRIOR_KINDS), Param("label", "str")],
    "reconstruct": [Param("mesh", "mesh", required=True), _RESOLUTION,
                    Param("fit", "str", default="encoder", choices=FIT_MODES),
                    Param("steps", "int", minimum=MIN_FIT_STEPS, maximum=MAX_FIT_STEPS)],
    "interpolate": [Param("mesh_a", "mesh", required=True), Param("mesh_b", "mesh", required=True),
                    Param("steps", "int", default=5, minimum=MIN_STEPS, maximum=MAX_STEPS), _RESOLUTION, *_SHARED_FIT],
    "variations": [Param("mesh", "mesh", required=True), Param("count", "int", default=4, minimum=1, maximum=MAX_COUNT),
                   Param("spread", "float", default=0.5, minimum=0.0, maximum=10.0), _SEED, _RESOLUTION,
                   *_SHARED_FIT],
    "finetune": [Param("data", "str", required=True), Param("out", "str", required=True),
                 Param("epochs", "int", required=True, minimum=1, maximum=100_000), Param("init", "str"),
                 Param("name", "str"), Param("load", "bool", default=True)],
    "template_uvs": [Param("template", "str", required=True, choices=("sphere", "squares")),
                     Param("patches", "int", default=1, minimum=1, maximum=1024), _RESOLUTION],
    "job_status": [Param("job_id", "str", required=True)],
    "cancel": [Param("job_id", "str", required=True)],
    "release": [],
    "shutdown": [],
}
MODEL_METHODS = frozenset({"load_model", "sample", "reconstruct", "interpolate", "variations", "release"})


def rss_bytes() -> int | None:
    """Current resident memory of this process (Linux /proc), else peak RSS from getrusage, else None."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if sys.platform == "win32":
        return None
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie (never signals it, also on Windows)."""
    if sys.platform == "win32":
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x00100000 | 0x1000, False, pid)  # SYNCHRONIZE | QUERY_LIMITED_INFO
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: it exists
        try:
            return kernel32.WaitForSingleObject(handle, 0) == 0x102  # WAIT_TIMEOUT: still running
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] != b"Z"
    except (OSError, ValueError):
        return True


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures (torch raises RuntimeError subclasses for those)."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


@dataclass
class TooLong:
    """A line longer than the limit, skipped; only its first and last bytes are kept, to recover its id."""

    head: bytes
    tail: bytes


class LineReader:
    """Splits a raw file descriptor into lines of at most `max_bytes`; longer ones are skipped, not buffered.

    A skipped line is returned as TooLong once it has ended. Reading the fd directly (not sys.stdin) keeps
    interpreter shutdown free of buffered-reader locks.
    """

    def __init__(self, fd: int, max_bytes: int, chunk: int = 1 << 16) -> None:
        self.fd, self.max_bytes, self.chunk = fd, max_bytes, chunk
        self._buf = bytearray()
        self._skipping: TooLong | None = None
        self._eof = False

    def __iter__(self) -> "LineReader":
        return self

    def __next__(self) -> Any:
        keep = ID_SCAN_BYTES
        while True:
            newline = self._buf.find(b"\n")
            if newline >= 0:
                line = bytes(self._buf[:newline])
                del self._buf[:newline + 1]
                if self._skipping is not None:
                    skipped, self._skipping = self._skipping, None
                    return TooLong(skipped.head, (skipped.tail + line)[-keep:])
                if len(line) > self.max_bytes:
                    return TooLong(line[:keep], line[-keep:])
                return line
            if self._skipping is not None:
                self._skipping.tail = (self._skipping.tail + self._buf)[-keep:]
                self._buf.clear()
            elif len(self._buf) > self.max_bytes:
                self._skipping = TooLong(bytes(self._buf[:keep]), bytes(self._buf[-keep:]))
                self._buf.clear()
            if self._eof:
                if self._skipping is not None:
                    skipped, self._skipping = self._skipping, None
                    return skipped
                if self._buf:
                    line = bytes(self._buf)
                    self._buf.clear()
                    return line
                raise StopIteration
            data = os.read(self.fd, self.chunk)
            if not data:
                self._eof = True
            self._buf += data


@dataclass
class Job:
    """A fine-tune run on its own thread, or a request-time fit on the model thread (`kind` "fit");
    `state` is running, done, failed or cancelled."""

    id: str
    kind: str = "finetune"
    cancel: threading.Event = field(default_factory=threading.Event)
    state: str = "running"
    last_event: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    thread: threading.Thread | None = None
    last_step_sent: float = float("-inf")

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job_id": self.id, "state": self.state, "last_event": self.last_event}
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


class Server:
    """Request dispatch, the model thread, fine-tune jobs and notifications over one output fd."""

    def __init__(self, service: ModelService, out_fd: int, models_dirs: Sequence[str | Path] = (),
                 warnings: Sequence[str] = ()) -> None:
        self.service = service
        self.models_dirs = [Path(p).expanduser() for p in models_dirs]
        self.warnings = list(warnings)
        self._out_fd = out_fd
        self._write_lock = threading.Lock()
        self._model_lock = threading.RLock()
        self._model_info: dict[str, Any] | None = None
        self._model_request: Request | None = None
        self._model_queue: queue.Queue[Request | None] = queue.Queue()
        self._model_thread = threading.Thread(target=self._model_loop, name="atlasvae-model", daemon=True)
        self._jobs: dict[str, Job] = {}
        self._job_ids = itertools.count(1)
        self._jobs_lock = threading.Lock()
        self.stop_event = threading.Event()
        self.stop_reason = ""
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "handshake": self._handshake, "list_models": self._list_models, "load_model": self._load_model,
            "sample": self._sample, "reconstruct": self._reconstruct, "interpolate": self._interpolate,
            "variations": self._variations, "finetune": self._finetune, "job_status": self._job_status,
            "cancel": self._cancel, "release": self._release, "shutdown": self._shutdown,
            "template_uvs": self._template_uvs,
        }
        self._model_thread.start()

    # ---- output -------------------------------------------------------------------------------------
    def send(self, line: bytes) -> None:
        """Write one protocol line atomically; a vanished reader stops the server."""
        with self._write_lock:
            view = memoryview(line)
            try:
                while view:
                    view = view[os.write(self._out_fd, view):]
            except OSError as exc:
                self.request_stop(f"cannot write to stdout ({exc.strerror or exc}); the client is gone")

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send(notification_line(method, params))

    def request_stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            log.info("stopping: %s", reason)
            self.stop_event.set()

    # ---- dispatch -----------------------------------------------------------------------------------
    def handle_line(self, line: bytes) -> None:
        """Parse and dispatch one line; every failure becomes an error reply, never an exception."""
        if not line.strip():
            return
        parsed = parse_request(line)
        if isinstance(parsed, RpcError):
            log.warning("rejected line (%d bytes): %s", len(line), parsed.message)
            self.send(parsed.to_line())
            return
        if parsed.method not in self._handlers:
            self._reply_error(parsed, RpcError(METHOD_NOT_FOUND, f"unknown method {parsed.method!r}; known: "
                                                                 f"{', '.join(sorted(self._handlers))}"))
            return
        if parsed.method in MODEL_METHODS:
            self._model_queue.put(parsed)
        else:
            self._execute(parsed)

    def reject_oversized(self, max_bytes: int, skipped: TooLong) -> None:
        """Answer a skipped over-long line, with its own id when its first or last bytes reveal it."""
        message = (f"invalid request: line longer than the {max_bytes}-byte limit was skipped; "
                   f"send smaller meshes or start the backend with a larger --max-message-bytes")
        log.warning(message)
        self.send(error_line(recover_id(skipped.head, skipped.tail), INVALID_REQUEST, message))

    def refuse_after_stop(self, line: bytes) -> None:
        """Answer a request that arrived after the server began stopping, so no client waits on it forever."""
        parsed = parse_request(line) if line.strip() else None
        if isinstance(parsed, RpcError):
            self.send(parsed.to_line())
        elif parsed is not None:
            self._reply_error(parsed, RpcError(BACKEND_ERROR, f"the backend is shutting down ({self.stop_reason}); "
                                                              f"'{parsed.method}' was not run"))

    def _reply_error(self, request: Request, error: RpcError) -> None:
        if request.is_notification:
            log.warning("notification %r failed: %s", request.method, error.message)
        else:
            self.send(error_line(request.id, error.code, error.message, error.data))

    def _execute(self, request: Request) -> None:
        """Validate params, run the handler and send its result or a mapped error."""
        started = time.perf_counter()
        try:
            params = validate_params(request.params, SPECS[request.method], request.method)
            result = self._handlers[request.method](params)
        except RpcError as exc:
            self._reply_error(request, exc)
            return
        except Exception as exc:  # noqa: BLE001 - the server must survive any request
            self._reply_error(request, self._map_exception(request.method, exc))
            return
        log.info("%s done in %.3f s", request.method, time.perf_counter() - started)
        if not request.is_notification:
            self.send(result_line(request.id, result))
        if request.method == "shutdown":
            self.request_stop("shutdown requested")

    def _map_exception(self, method: str, exc: BaseException) -> RpcError:
        if is_out_of_memory(exc):
            log.error("out of memory in %s: %s", method, exc)
            self._free_memory()
            return RpcError(OUT_OF_MEMORY, f"out of memory on {self.service.device} during '{method}': lower "
                                           f"the resolution or count, release memory, or use the CPU device "
                                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
        from backend.service import NoModelError

        if isinstance(exc, NoModelError):
            return RpcError(NO_MODEL, str(exc))
        if isinstance(exc, BusyError):
            return RpcError(BUSY, str(exc))
        if isinstance(exc, AtlasError):
            log.warning("%s failed: %s", method, exc)
            return RpcError(BACKEND_ERROR, str(exc))
        log.error("unexpected error in %s:\n%s", method, "".join(traceback.format_exception(exc)))
        return RpcError(BACKEND_ERROR, f"internal error in '{method}': {type(exc).__name__}: {exc} "
                                       f"(details in the backend log)")

    def _model_loop(self) -> None:
        while True:
            request = self._model_queue.get()
            if request is None:
                return
            if self.stop_event.is_set():
                self._reply_error(request, RpcError(BACKEND_ERROR, "the backend is shutting down"))
                continue
            with self._model_lock:
                self._model_request = request
                self._execute(request)

    def close(self, job_wait_s: float = JOB_STOP_WAIT_S, model_wait_s: float = MODEL_STOP_WAIT_S) -> bool:
        """Cancel a running job and stop the model thread; True when every worker thread has finished."""
        self._model_queue.put(None)
        with self._jobs_lock:
            running = [job for job in self._jobs.values() if job.state == "running"]
        for job in running:
            log.info("cancelling %s before exit", job.id)
            job.cancel.set()
        deadline = time.monotonic() + job_wait_s
        for job in running:
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
        self._model_thread.join(model_wait_s)
        alive = [t.name for t in [self._model_thread, *(j.thread for j in running if j.thread)] if t.is_alive()]
        if alive:
            log.warning("threads still busy at exit: %s", ", ".join(alive))
        return not alive

    # ---- helpers ------------------------------------------------------------------------------------
    def _require_model(self) -> None:
        if self._model_info is None:
            raise RpcError(NO_MODEL, "no model is loaded: call load_model with a model folder first")

    def _free_memory(self) -> None:
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _check_output_size(self, count: int, resolution: int) -> None:
        """The CLI's cap (backend/service.py, from measured peak memory), as an invalid-params error."""
        from backend.errors import ConfigError

        try:
            self.service.check_output_size(count, resolution)
        except ConfigError as exc:
            raise invalid_params(f"params 'count' x 'resolution': {exc}") from None

    def load_at_start(self, path: str) -> None:
        try:
            with self._model_lock:
                self._model_info = self.service.load(path)
            log.info("loaded model %s", path)
        except AtlasError as exc:
            message = f"could not load the model given with --model: {exc}"
            log.error(message)
            self.warnings.append(message)

    # ---- methods ------------------------------------------------------------------------------------
    def _handshake(self, params: dict[str, Any]) -> dict[str, Any]:
        from backend.device import describe_device

        return {"protocol_version": PROTOCOL_VERSION, "backend_version": __version__,
                "device": self.service.device, "device_name": describe_device(self.service.device),
                "model": self._model_info, "models": self.service.list_models(self.models_dirs),
                "pid": os.getpid(), "warnings": self.warnings}

    def _list_models(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"models": self.service.list_models(self.models_dirs)}

    def _load_model(self, params: dict[str, Any]) -> dict[str, Any]:
        self._model_info = self.service.load(Path(params["path"]).expanduser())
        return {"model": self._model_info}

    def _sample(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_output_size(params["count"], params["resolution"])
        self._require_model()
        meshes = self.service.sample(params["count"], seed=params["seed"], temperature=params["temperature"],
                                     resolution=params["resolution"], prior=params["prior"],
                                     label=params["label"])
        return {"meshes": [encode_mesh(m) for m in meshes]}

    def _reconstruct(self, params: dict[str, Any]) -> dict[str, Any]:
        self._require_model()
        mesh, chamfer = self._as_fit_job(params["fit"], lambda progress, cancel: self.service.reconstruct(
            params["mesh"], resolution=params["resolution"], fit=params["fit"], steps=params["steps"],
            progress=progress, cancel=cancel))
        return {"mesh": encode_mesh(mesh), "chamfer": chamfer}

    def _interpolate(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_output_size(params["steps"], params["resolution"])
        self._require_model()
        meshes = self._as_fit_job(params["fit"], lambda progress, cancel: self.service.interpolate(
            params["mesh_a"], params["mesh_b"], steps=params["steps"], resolution=params["resolution"],
            fit=params["fit"], fit_steps=params["fit_steps"], progress=progress, cancel=cancel))
        return {"meshes": [encode_mesh(m) for m in meshes]}

    def _variations(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_output_size(params["count"], params["resolution"])
        self._require_model()
        meshes = self._as_fit_job(params["fit"], lambda progress, cancel: self.service.variations(
            params["mesh"], count=params["count"], spread=params["spread"], seed=params["seed"],
            resolution=params["resolution"], fit=params["fit"], fit_steps=params["fit_steps"], progress=progress,
            cancel=cancel))
        return {"meshes": [encode_mesh(m) for m in meshes]}

    def _template_uvs(self, params: dict[str, Any]) -> dict[str, Any]:
        """Per-corner UVs of a template mesh (no model needed): the add-on maps every output with them."""
        import base64

        import numpy as np

        from backend.templates import template_uvs

        uvs = template_uvs(params["template"], params["patches"], params["resolution"])
        return {"uvs": base64.b64encode(np.ascontiguousarray(uvs, dtype="<f4").tobytes()).decode("ascii"),
                "corner_count": len(uvs)}

    def _as_fit_job(self, fit: str, work: Callable[[Any, Any], Any]) -> Any:
        """Run a model request that fits at request time as a job: "progress" notifications (throttled like a
        fine-tune's, each naming the request's id), `cancel` with its job id, then "job_done"; the request's
        own reply carries the result, or a CANCELLED error. An "encoder" request is one pass: no job."""
        if fit == "encoder":
            return work(None, None)
        from backend.fit import FitCancelled

        request = self._model_request
        request_id = request.id if request is not None else None
        method = request.method if request is not None else "fit"
        with self._jobs_lock:
            finished = [j.id for j in self._jobs.values() if j.kind == "fit" and j.state != "running"]
            for old in finished[:max(0, len(finished) - KEEP_FINISHED_FITS)]:
                del self._jobs[old]
            job = Job(id=f"fit-{next(self._job_ids)}", kind="fit")
            self._jobs[job.id] = job
        self.notify("progress", {"job_id": job.id, "event": "start", "method": method, "fit": fit,
                                 "request_id": request_id})
        try:
            result = work(lambda event: self._on_progress(job, {**event, "request_id": request_id}), job.cancel)
            job.state = "done"
            return result
        except FitCancelled as exc:
            job.state = "cancelled"
            raise RpcError(CANCELLED, f"'{method}' cancelled ({job.id}): {exc}") from None
        except Exception as exc:
            job.state, job.error = "failed", str(exc)
            raise
        finally:
            log.info("%s (%s, fit %s) ended: %s", job.id, method, fit, job.state)
            self.notify("job_done", {"job_id": job.id, "state": job.state, "request_id": request_id,
                                     **({"error": job.error} if job.error else {})})

    def _release(self, params: dict[str, Any]) -> dict[str, Any]:
        before = rss_bytes()
        released = bool(self.service.unload())
        self._model_info = None
        self._free_memory()
        return {"released": released, "rss_before": before, "rss_after": rss_bytes()}

    def _shutdown(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _job(self, job_id: str) -> Job:
        with self._jobs_lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise invalid_params(f"param 'job_id': no job {job_id!r} (known: {', '.join(self._jobs) or 'none'})")
        return job

    def _job_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._job(params["job_id"]).status()

    def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job(params["job_id"])
        if job.state == "running":
            job.cancel.set()
            log.info("cancel requested for %s", job.id)
            return {"job_id": job.id, "state": "cancelling"}
        return {"job_id": job.id, "state": job.state}

    def _refuse_if_busy(self) -> None:
        busy = [job.id for job in self._jobs.values() if job.state == "running" and job.kind == "finetune"]
        if busy:
            raise RpcError(BUSY, f"a fine-tune job ({busy[0]}) is already running; cancel it or wait for it "
                                 f"to finish")

    def _finetune(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._jobs_lock:
            self._refuse_if_busy()
        data = Path(params["data"]).expanduser()
        if not data.is_dir():
            raise invalid_params(f"param 'data': folder {str(data)!r} does not exist")
        from backend.training.config import TrainConfig

        init = params["init"] or (self._model_info or {}).get("path")
        cfg = TrainConfig(data=str(data), out=str(Path(params["out"]).expanduser()),
                          init=str(Path(init).expanduser()) if init else None, epochs=params["epochs"],
                          device=self.service.device, name=params["name"])
        cfg.check()
        with self._jobs_lock:
            self._refuse_if_busy()
            job = Job(id=f"job-{next(self._job_ids)}")
            job.thread = threading.Thread(target=self._run_job, args=(job, cfg, params["load"]),
                                          name=f"atlasvae-{job.id}", daemon=True)
            self._jobs[job.id] = job
        log.info("starting %s: data=%s out=%s init=%s epochs=%d", job.id, cfg.data, cfg.out, cfg.init,
                 params["epochs"])
        job.thread.start()
        return {"job_id": job.id}

    def _on_progress(self, job: Job, event: dict[str, Any]) -> None:
        job.last_event = dict(event)
        now = time.monotonic()
        if event.get("event") == "step":
            if now - job.last_step_sent < STEP_EVENT_INTERVAL_S:
                return
            job.last_step_sent = now
        self.notify("progress", {**event, "job_id": job.id})

    def _run_job(self, job: Job, cfg: Any, load: bool) -> None:
        from backend.training.loop import run

        try:
            summary = run(cfg, progress=lambda event: self._on_progress(job, event), cancel=job.cancel)
            result = dict(summary or {})
            if result.get("state") == "cancelled":
                job.state = "cancelled"
            elif load:
                try:
                    with self._model_lock:
                        self._model_info = self.service.load(cfg.out)
                    result["model"] = self._model_info
                except AtlasError as exc:
                    result["load_error"] = str(exc)
                    log.warning("%s finished but its model did not load: %s", job.id, exc)
            job.result = result
            if job.state == "running":
                job.state = "done"
        except Exception as exc:  # noqa: BLE001 - report every failure as the job's error
            job.state = "failed"
            job.error = self._map_exception(f"finetune {job.id}", exc).message
        log.info("%s ended: %s%s", job.id, job.state, f" ({job.error})" if job.error else "")
        done: dict[str, Any] = {"job_id": job.id, "state": job.state}
        if job.result is not None:
            done["result"] = job.result
        if job.error is not None:
            done["error"] = job.error
        self.notify("job_done", done)


def _claim_stdio() -> tuple[int, int]:
    """Keep private copies of stdin/stdout for the protocol; fd 1 becomes stderr and fd 0 /dev/null."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    return proto_in, proto_out


def _setup_logging(log_file: str | None) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    stderr_handler = logging.StreamHandler(sys.stderr)
    stderr_handler.setFormatter(fmt)
    root.addHandler(stderr_handler)
    if log_file:
        try:
            Path(log_file).expanduser().parent.mkdir(parents=True, exist_ok=True)
            file_handler = logging.FileHandler(Path(log_file).expanduser(), encoding="utf-8")
        except OSError as exc:
            log.warning("cannot open --log-file %s (%s); logging to stderr only", log_file, exc.strerror or exc)
        else:
            file_handler.setFormatter(fmt)
            root.addHandler(file_handler)


def _watch_parent(server: Server, pid: int) -> None:
    while not server.stop_event.wait(PARENT_POLL_S):
        if not pid_alive(pid):
            server.request_stop(f"parent process {pid} is gone")
            return


def _install_signals(server: Server, parent_pid: int | None) -> None:
    """SIGTERM/SIGINT stop gracefully; on Linux the parent's death also signals us (PR_SET_PDEATHSIG)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: server.request_stop(f"signal {signal.Signals(signum).name}"))
    if parent_pid is None or not sys.platform.startswith("linux") or os.getppid() != parent_pid:
        return

    def on_parent_signal(signum: int, frame: Any) -> None:
        # The signal also fires when only the spawning *thread* of the parent exits; check the process.
        if os.getppid() != parent_pid or not pid_alive(parent_pid):
            server.request_stop(f"parent process {parent_pid} is gone")

    signal.signal(signal.SIGUSR2, on_parent_signal)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGUSR2), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError) as exc:
        log.info("PR_SET_PDEATHSIG unavailable (%s); relying on polling", exc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atlasvae serve", description="Serve the AtlasVAE model over stdio "
                                     "JSON-RPC (one request per line on stdin, replies on stdout).")
    parser.add_argument("--model", help="model folder to load at start")
    parser.add_argument("--models-dir", action="append", default=[], metavar="PATH",
                        help="folder scanned for model folders (repeatable)")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="compute device (auto: CUDA, then MPS, then CPU)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--log-file", help="also append the log to this file")
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
                        help="longest accepted request line in bytes (default 64 MiB)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the server until stdin closes, `shutdown` arrives, a signal, or the parent process is gone."""
    args = build_parser().parse_args(argv)
    if args.max_message_bytes < 1024:
        print(f"error: --max-message-bytes must be at least 1024, got {args.max_message_bytes}", file=sys.stderr)
        return 2
    proto_in, proto_out = _claim_stdio()
    _setup_logging(args.log_file)
    log.info("AtlasVAE backend %s (protocol %d), pid %d, python %s", __version__, PROTOCOL_VERSION,
             os.getpid(), sys.version.split()[0])
    try:
        from backend.service import ModelService

        service = ModelService(device=args.device)
    except AtlasError as exc:
        log.error("cannot start: %s", exc)
        return 2
    except ImportError as exc:
        log.error("cannot start: the backend's Python environment is incomplete (%s: %s); install the "
                  "backend requirements into %s", type(exc).__name__, exc, sys.executable)
        return 2
    server = Server(service, proto_out, models_dirs=args.models_dir)
    _install_signals(server, args.parent_pid)
    log.info("device %s", service.device)
    if args.model:
        server.load_at_start(args.model)
    if args.parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(server, args.parent_pid), name="atlasvae-parent-watch",
                         daemon=True).start()
    threading.Thread(target=_read_loop, args=(server, proto_in, args.max_message_bytes), name="atlasvae-reader",
                     daemon=True).start()
    while not server.stop_event.wait(1.0):
        pass
    clean = server.close()
    log.info("exiting (%s)", server.stop_reason)
    logging.shutdown()
    if not clean:
        os._exit(0)
    return 0


def _read_loop(server: Server, fd: int, max_bytes: int) -> None:
    """Dispatch lines until stdin closes; once stopping, every further request is refused by its id."""
    try:
        for line in LineReader(fd, max_bytes):
            if isinstance(line, TooLong):
                server.reject_oversized(max_bytes, line)
            elif server.stop_event.is_set():
                server.refuse_after_stop(line)
            else:
                server.handle_line(line)
    except OSError as exc:
        log.error("reading stdin failed: %s", exc)
    server.request_stop("stdin closed")


if __name__ == "__main__":
    sys.exit(main())
