"""Jobs the client can follow and cancel by id: a fine-tune on its own thread, or a request-time fit on the
model thread. The JobTable holds them and does every job operation (create, progress, cancel, status, the
fit-job lifecycle, cancel-all at exit) behind one lock, so the dispatcher only routes requests to it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from .protocol import BUSY, CANCELLED, RpcError, invalid_params

log = logging.getLogger("atlasvae.server")

STEP_EVENT_INTERVAL_S = 0.2
KEEP_FINISHED_FITS = 16
Notify = Callable[[str, dict[str, Any]], None]
Result = TypeVar("Result")


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
        """The `job_status` reply: id, state and last progress event, with the result or error once there."""
        out: dict[str, Any] = {"job_id": self.id, "state": self.state, "last_event": self.last_event}
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


class JobTable:
    """Every job by id, and what can be done to them; `notify` sends "progress" and "job_done" notifications."""

    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job:
        """The job with this id; an unknown id is an invalid-params error naming the known ones."""
        with self._lock:
            job = self._jobs.get(job_id)
            known = ", ".join(self._jobs) or "none"
        if job is None:
            raise invalid_params(f"param 'job_id': no job {job_id!r} (known: {known})")
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask a running job to stop (it ends at its next check); the `cancel` reply."""
        job = self.get(job_id)
        if job.state == "running":
            job.cancel.set()
            log.info("cancel requested for %s", job.id)
            return {"job_id": job.id, "state": "cancelling"}
        return {"job_id": job.id, "state": job.state}

    def cancel_running(self) -> list[Job]:
        """Ask every running job to stop (the server is exiting); the jobs asked."""
        with self._lock:
            running = [job for job in self._jobs.values() if job.state == "running"]
        for job in running:
            log.info("cancelling %s before exit", job.id)
            job.cancel.set()
        return running

    def refuse_if_busy(self) -> None:
        """A BUSY error while a fine-tune runs: one fine-tune at a time."""
        with self._lock:
            self._refuse_if_busy()

    def _refuse_if_busy(self) -> None:
        busy = [job.id for job in self._jobs.values() if job.state == "running" and job.kind == "finetune"]
        if busy:
            raise RpcError(BUSY, f"a fine-tune job ({busy[0]}) is already running; cancel it or wait for it "
                                 f"to finish")

    def start_finetune(self, target: Callable[[Job], None]) -> Job:
        """Register a fine-tune job and start `target(job)` on its own thread; BUSY while another runs."""
        with self._lock:
            self._refuse_if_busy()
            job = Job(id=f"job-{next(self._ids)}")
            job.thread = threading.Thread(target=target, args=(job,), name=f"atlasvae-{job.id}", daemon=True)
            self._jobs[job.id] = job
        job.thread.start()
        return job

    def progress(self, job: Job, event: dict[str, Any]) -> None:
        """Keep `event` as the job's last and send it as a "progress" notification; "step" events at most
        every STEP_EVENT_INTERVAL_S, so a fast loop does not flood the client."""
        job.last_event = dict(event)
        now = time.monotonic()
        if event.get("event") == "step":
            if now - job.last_step_sent < STEP_EVENT_INTERVAL_S:
                return
            job.last_step_sent = now
        self._notify("progress", {**event, "job_id": job.id})

    def finish_finetune(self, job: Job) -> None:
        """Send a finished fine-tune's "job_done" with its state and result or error."""
        log.info("%s ended: %s%s", job.id, job.state, f" ({job.error})" if job.error else "")
        done: dict[str, Any] = {"job_id": job.id, "state": job.state}
        if job.result is not None:
            done["result"] = job.result
        if job.error is not None:
            done["error"] = job.error
        self._notify("job_done", done)

    def run_fit(self, request_id: Any, method: str, fit: str,
                work: Callable[[Callable[[dict[str, Any]], None], threading.Event], Result]) -> Result:
        """Run a request-time fit as a job: "start", throttled "progress" and "job_done" notifications, each
        naming `request_id`; `cancel` with its job id ends it with a CANCELLED error. The last
        KEEP_FINISHED_FITS finished fits stay for `job_status`."""
        from ..fit import FitCancelled

        with self._lock:
            finished = [j.id for j in self._jobs.values() if j.kind == "fit" and j.state != "running"]
            for old in finished[:max(0, len(finished) - KEEP_FINISHED_FITS)]:
                del self._jobs[old]
            job = Job(id=f"fit-{next(self._ids)}", kind="fit")
            self._jobs[job.id] = job
        self._notify("progress", {"job_id": job.id, "event": "start", "method": method, "fit": fit,
                                  "request_id": request_id})
        try:
            result = work(lambda event: self.progress(job, {**event, "request_id": request_id}), job.cancel)
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
            self._notify("job_done", {"job_id": job.id, "state": job.state, "request_id": request_id,
                                      **({"error": job.error} if job.error else {})})
