"""The RPC dispatcher: one Server answers every request line, runs model methods one at a time on a model
thread, and sends replies and notifications over one output fd; jobs (a fine-tune, a request-time fit) live
in the JobTable of jobs.py.

Control methods (handshake, job_status, cancel, ...) are answered on the reader thread, so they stay
responsive while the model or a job is busy. Server is one class because its handlers share the model lock
and the write lock, and keeping them beside the dispatch that takes those locks keeps the locking rules
readable in one place.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .. import PROTOCOL_VERSION, __version__
from ..errors import AtlasError, BusyError, ConfigError
from ..limits import MAX_AMOUNT, MAX_DIRECTIONS, MAX_FRAME, MAX_MOVES
from ..options import (
    AMOUNT, BLEND, COUNT, EPOCHS, FACE_BUDGET, FIT, FIT_STEPS, LABEL, PRIOR, RESOLUTION, SEED, SHARED_FIT, SHARED_FIT_STEPS, SIZE,
    SPREAD, STEPS, SURFACE, TEMPERATURE, VARIATION_COUNT,
)
from .jobs import Job, JobTable
from .lines import TooLong
from .methods import METHODS, rpc, wire
from .process import is_out_of_memory, rss_bytes
from .protocol import (
    BACKEND_ERROR, BUSY, INVALID_REQUEST, METHOD_NOT_FOUND, NO_MODEL, OUT_OF_MEMORY, Param, Request,
    RpcError, encode_mesh, error_line, invalid_params, notification_line, parse_request, recover_id, result_line,
    validate_params,
)

if TYPE_CHECKING:
    from .service import ModelService  # imports torch: the server loads it only when serving

log = logging.getLogger("atlasvae.server")

JOB_STOP_WAIT_S = 60.0
MODEL_STOP_WAIT_S = 10.0
_MESH = Param("mesh", "mesh", required=True)
_JOB_ID = Param("job_id", "str", required=True)
_MOVES = Param("moves", "list", default=[], length=(0, MAX_MOVES), item=Param("move", "object", fields=(
    Param("direction", "int", required=True, minimum=0, maximum=MAX_DIRECTIONS - 1), wire(AMOUNT))))
_OFFSET = Param("offset", "list", default=[0.0, 0.0, 0.0], length=(3, 3),
                item=Param("offset", "float", minimum=-MAX_FRAME, maximum=MAX_FRAME))
_MESH_RESULT = ("mesh: {vertices, faces, vertex_count, face_count, surface, pieces_dropped, latent, scale, "
                "offset, label}")


class Server:
    """Request dispatch, the model thread, and replies and notifications over one output fd."""

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
        self.jobs = JobTable(self.notify)
        self.stop_event = threading.Event()
        self.stop_reason = ""
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            name: method.handler.__get__(self) for name, method in METHODS.items()}
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
        if METHODS[parsed.method].model:
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
            params = validate_params(request.params, METHODS[request.method].params, request.method)
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
        from .service import NoModelError

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
        running = self.jobs.cancel_running()
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

    def _check_output_size(self, count: int, params: dict[str, Any]) -> None:
        """The output cap (service.check_output_size, from measured peak memory; the CLI calls it too), as an
        invalid-params error, before any work."""
        try:
            self.service.check_output_size(count, params["resolution"], params["surface"], params["face_budget"])
        except ConfigError as exc:
            raise invalid_params(f"params 'count' x 'resolution' (or 'face_budget'): {exc}") from None

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
    @rpc("handshake", result="{protocol_version, backend_version, device, device_name, model (info or null), "
                             "models: [{name, path}], pid, warnings: [str]}")
    def _handshake(self, params: dict[str, Any]) -> dict[str, Any]:
        from ..device import describe_device

        return {"protocol_version": PROTOCOL_VERSION, "backend_version": __version__,
                "device": self.service.device, "device_name": describe_device(self.service.device),
                "model": self._model_info, "models": self.service.list_models(self.models_dirs),
                "pid": os.getpid(), "warnings": self.warnings}

    @rpc("list_models", result="{models: [{name, path}]}")
    def _list_models(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"models": self.service.list_models(self.models_dirs)}

    @rpc("load_model", Param("path", "str", required=True), model=True, result="{model: info}")
    def _load_model(self, params: dict[str, Any]) -> dict[str, Any]:
        self._model_info = self.service.load(Path(params["path"]).expanduser())
        return {"model": self._model_info}

    @rpc("sample", COUNT, SEED, TEMPERATURE, RESOLUTION, PRIOR, LABEL, SIZE, SURFACE, FACE_BUDGET, model=True,
         result="{meshes: [mesh], size}", note="size: what was applied; \"unit\" for a model without sizes")
    def _sample(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_output_size(params["count"], params)
        self._require_model()
        meshes = self.service.sample(params["count"], seed=params["seed"], temperature=params["temperature"],
                                     resolution=params["resolution"], prior=params["prior"],
                                     label=params["label"], size=params["size"], surface=params["surface"],
                                     face_budget=params["face_budget"])
        return {"meshes": [encode_mesh(m) for m in meshes], "size": self.service.size_applied(params["size"])}

    @rpc("reconstruct", _MESH, RESOLUTION, FIT, FIT_STEPS, SURFACE, FACE_BUDGET, model=True,
         result="{mesh, chamfer}")
    def _reconstruct(self, params: dict[str, Any]) -> dict[str, Any]:
        self._require_model()
        mesh, chamfer = self._as_fit_job(params["fit"], lambda progress, cancel: self.service.reconstruct(
            params["mesh"], resolution=params["resolution"], fit=params["fit"], steps=params["steps"],
            progress=progress, cancel=cancel, surface=params["surface"], face_budget=params["face_budget"]))
        return {"mesh": encode_mesh(mesh), "chamfer": chamfer}

    @rpc("interpolate", Param("mesh_a", "mesh", required=True), Param("mesh_b", "mesh", required=True), STEPS,
         RESOLUTION, SHARED_FIT, SHARED_FIT_STEPS, SURFACE, FACE_BUDGET, model=True, result="{meshes: [mesh]}")
    def _interpolate(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_output_size(params["steps"], params)
        self._require_model()
        meshes = self._as_fit_job(params["fit"], lambda progress, cancel: self.service.interpolate(
            params["mesh_a"], params["mesh_b"], steps=params["steps"], resolution=params["resolution"],
            fit=params["fit"], fit_steps=params["fit_steps"], progress=progress, cancel=cancel,
            surface=params["surface"], face_budget=params["face_budget"]))
        return {"meshes": [encode_mesh(m) for m in meshes]}

    @rpc("variations", _MESH, VARIATION_COUNT, SPREAD, SEED, RESOLUTION, SHARED_FIT, SHARED_FIT_STEPS, SURFACE,
         FACE_BUDGET, model=True, result="{meshes: [mesh]}")
    def _variations(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_output_size(params["count"], params)
        self._require_model()
        meshes = self._as_fit_job(params["fit"], lambda progress, cancel: self.service.variations(
            params["mesh"], count=params["count"], spread=params["spread"], seed=params["seed"],
            resolution=params["resolution"], fit=params["fit"], fit_steps=params["fit_steps"], progress=progress,
            cancel=cancel, surface=params["surface"], face_budget=params["face_budget"]))
        return {"meshes": [encode_mesh(m) for m in meshes]}

    @rpc("directions", LABEL, model=True, result="{label, directions: [{index, description, sigma}], families, "
                                                 "max_amount}",
         note="label: the family whose own set this is, null for the model-wide set")
    def _directions(self, params: dict[str, Any]) -> dict[str, Any]:
        self._require_model()
        try:  # the service checks the label (its message names the param)
            family, chosen, families = self.service.direction_set(params["label"])
        except ConfigError as exc:
            raise invalid_params(str(exc)) from None
        return {"label": family, "families": families, "max_amount": MAX_AMOUNT,
                "directions": [{"index": i, "description": text, "sigma": float(sigma)}
                               for i, (text, sigma) in enumerate(zip(chosen.descriptions, chosen.sigma))]}

    @rpc("explore", Param("latent", "latent", required=True), _MOVES, LABEL, Param("toward", "latent"), BLEND,
         Param("scale", "float", default=1.0, minimum=1.0 / MAX_FRAME, maximum=MAX_FRAME), _OFFSET, RESOLUTION,
         SURFACE, FACE_BUDGET, model=True, within=(AMOUNT,), result=f"{{{_MESH_RESULT}}}",
         note="moves: [{direction, amount}], amount in sigmas")
    def _explore(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_output_size(1, params)
        self._require_model()
        moves = [(m["direction"], m["amount"]) for m in params["moves"]]
        try:  # the service checks the latent sizes, the label and the move indices (its messages name the params)
            mesh = self.service.explore(params["latent"], moves, label=params["label"], toward=params["toward"],
                                        blend=params["blend"], scale=params["scale"], offset=params["offset"],
                                        resolution=params["resolution"], surface=params["surface"],
                                        face_budget=params["face_budget"])
        except ConfigError as exc:
            raise invalid_params(str(exc)) from None
        return {"mesh": encode_mesh(mesh)}

    @rpc("template_uvs", Param("template", "str", required=True, choices=("sphere", "squares")),
         Param("patches", "int", default=1, minimum=1, maximum=1024), RESOLUTION,
         result="{uvs: base64 float32 (corners x 2), corner_count}", note="no model needed")
    def _template_uvs(self, params: dict[str, Any]) -> dict[str, Any]:
        """Per-corner UVs of a template mesh (no model needed): the add-on maps every output with them."""
        import base64

        import numpy as np

        from ..templates import corner_uvs

        uvs = corner_uvs(params["template"], params["patches"], params["resolution"])
        return {"uvs": base64.b64encode(np.ascontiguousarray(uvs, dtype="<f4").tobytes()).decode("ascii"),
                "corner_count": len(uvs)}

    def _as_fit_job(self, fit: str, work: Callable[[Any, Any], Any]) -> Any:
        """Run a model request that fits at request time as a job of the JobTable, its notifications naming
        the request's id; the request's own reply carries the result, or a CANCELLED error. An "encoder"
        request is one pass: no job."""
        if fit == "encoder":
            return work(None, None)
        request = self._model_request
        return self.jobs.run_fit(request.id if request is not None else None,
                                 request.method if request is not None else "fit", fit, work)

    @rpc("release", model=True, result="{released: bool, rss_before, rss_after}")
    def _release(self, params: dict[str, Any]) -> dict[str, Any]:
        before = rss_bytes()
        released = bool(self.service.unload())
        self._model_info = None
        self._free_memory()
        return {"released": released, "rss_before": before, "rss_after": rss_bytes()}

    @rpc("shutdown", note="then exit 0")
    def _shutdown(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    @rpc("job_status", _JOB_ID, result="{job_id, state, last_event, result?, error?}")
    def _job_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.jobs.get(params["job_id"]).status()

    @rpc("cancel", _JOB_ID, result="{job_id, state}")
    def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.jobs.cancel(params["job_id"])

    @rpc("finetune", Param("data", "str", required=True), Param("out", "str", required=True), EPOCHS,
         Param("init", "str"), Param("name", "str"), Param("load", "bool", default=True), Param("freeze", "str"),
         result="{job_id}", note="freeze: comma list of encoder, features, heads, decoder")
    def _finetune(self, params: dict[str, Any]) -> dict[str, Any]:
        self.jobs.refuse_if_busy()
        data = Path(params["data"]).expanduser()
        if not data.is_dir():
            raise invalid_params(f"param 'data': folder {str(data)!r} does not exist")
        from ..training.config import FINETUNE_LR, TrainConfig

        init = params["init"] or (self._model_info or {}).get("path")
        cfg = TrainConfig(data=str(data), out=str(Path(params["out"]).expanduser()),
                          init=str(Path(init).expanduser()) if init else None, epochs=params["epochs"],
                          lr=FINETUNE_LR, device=self.service.device, name=params["name"],
                          freeze=params["freeze"] or ())
        cfg.check()
        job = self.jobs.start_finetune(lambda job: self._run_job(job, cfg, params["load"]))
        log.info("started %s: data=%s out=%s init=%s epochs=%d", job.id, cfg.data, cfg.out, cfg.init,
                 params["epochs"])
        return {"job_id": job.id}

    def _run_job(self, job: Job, cfg: Any, load: bool) -> None:
        from ..training.loop import run

        try:
            summary = run(cfg, progress=lambda event: self.jobs.progress(job, event), cancel=job.cancel)
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
        self.jobs.finish_finetune(job)
