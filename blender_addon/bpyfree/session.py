"""One running backend process as the client sees it (Session): its pipes, the threads that read its
stdout (replies and notifications) and stderr (the log), and the requests in flight, each a Future that
its reply, a timeout or the process's death resolves; plus the errors those futures raise.

Standard library only, like the rest of bpyfree; BackendClient (client.py) starts, restarts and stops
sessions.
"""

from __future__ import annotations

import collections
import itertools
import json
import queue
import signal
import subprocess
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Mapping

STDERR_LINES = 200
TAIL_LINES = 20


class Pending(Future):
    """A request in flight: a Future of its result that also knows the id it was sent with, which the
    backend's notifications about it (a request-time fit's progress and job_done) name as `request_id`.
    None when the request was never sent."""

    request_id: int | None = None


class BackendError(Exception):
    """A failed request or a dead backend: `message`, JSON-RPC `code` (if any) and the backend's last log lines."""

    def __init__(self, message: str, code: int | None = None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.stderr_tail = stderr_tail

    def __str__(self) -> str:
        if self.stderr_tail:
            return f"{self.message}\n--- last backend output ---\n{self.stderr_tail}"
        return self.message


class BackendTimeout(BackendError):
    """No reply within the requested time (the backend may still be working on it)."""


def exit_text(code: int) -> str:
    """How the backend ended, from its exit code (a signal named when it was killed by one)."""
    if code < 0:
        try:
            return f"backend exited with code {code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f"backend exited with code {code}"
    return f"backend exited with code {code}"


class Session:
    """One backend process with its pipes, reader threads and in-flight requests."""

    def __init__(self, proc: subprocess.Popen, log_path: Path | None, max_message_bytes: int,
                 notifications: "queue.SimpleQueue[dict[str, Any]]") -> None:
        self.proc = proc
        self.log_path = log_path
        self.max_message_bytes = max_message_bytes
        self.notifications = notifications
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.pending: dict[int, tuple[str, Future]] = {}
        self.ids = itertools.count(1)
        self.stderr_lines: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.closed = False
        self.close_error: BackendError | None = None
        self.stopping = False
        self.ready = False
        self.handshake: dict[str, Any] | None = None
        self.stderr_thread = threading.Thread(target=self._read_stderr, name="atlasvae-client-stderr",
                                              daemon=True)
        self.stdout_thread = threading.Thread(target=self._read_stdout, name="atlasvae-client-stdout",
                                              daemon=True)
        self.stderr_thread.start()
        self.stdout_thread.start()

    def tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(list(self.stderr_lines)[-lines:])

    # ---- requests -----------------------------------------------------------------------------------
    def submit(self, method: str, params: Mapping[str, Any] | None, timeout: float | None) -> Pending:
        future = Pending()
        with self.lock:
            if self.closed:
                future.set_exception(self.close_error or BackendError("backend is not running"))
                return future
            request_id = next(self.ids)
            future.request_id = request_id
            self.pending[request_id] = (method, future)
        try:
            line = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": dict(params or {})},
                              ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii") + b"\n"
        except (TypeError, ValueError) as exc:
            self._resolve(request_id, error=BackendError(f"cannot encode params for '{method}': {exc}"))
            return future
        if len(line) > self.max_message_bytes:
            self._resolve(request_id, error=BackendError(
                f"request '{method}' is {len(line)} bytes, over the {self.max_message_bytes}-byte message limit; "
                f"send a smaller mesh"))
            return future
        if timeout is not None:
            timer = threading.Timer(timeout, self._time_out, args=(request_id, method, timeout))
            timer.daemon = True
            timer.start()
            future.add_done_callback(lambda _f: timer.cancel())
        try:
            with self.write_lock:
                stdin = self.proc.stdin
                assert stdin is not None
                stdin.write(line)
                stdin.flush()
        except (OSError, ValueError) as exc:
            try:
                code = self.proc.wait(timeout=2.0)
                message = exit_text(code)
            except subprocess.TimeoutExpired:
                message = f"cannot send '{method}' to the backend ({exc})"
            self._resolve(request_id, error=BackendError(message, stderr_tail=self.tail()))
        return future

    def _time_out(self, request_id: int, method: str, timeout: float) -> None:
        self._resolve(request_id, error=BackendTimeout(f"backend did not answer '{method}' within {timeout:g} s",
                                                       stderr_tail=self.tail()))

    def _resolve(self, request_id: Any, result: Any = None, error: BackendError | None = None) -> bool:
        with self.lock:
            entry = self.pending.pop(request_id, None) if isinstance(request_id, int) else None
        if entry is None:
            return False
        future = entry[1]
        if not future.set_running_or_notify_cancel():
            return True
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
        return True

    def fail_all(self, error: BackendError) -> None:
        with self.lock:
            self.closed = True
            self.close_error = error
            pending = list(self.pending)
        for request_id in pending:
            self._resolve(request_id, error=error)

    # ---- reader threads -----------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            for raw in iter(stdout.readline, b""):
                self._dispatch(raw)
        except (OSError, ValueError):
            pass
        code = self.proc.wait()
        self.stderr_thread.join(timeout=5.0)
        if self.stopping:
            error = BackendError("backend stopped")
        else:
            error = BackendError(exit_text(code), stderr_tail=self.tail())
        self.fail_all(error)

    def _dispatch(self, raw: bytes) -> None:
        try:
            message = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._note(f"[client] ignored a non-protocol line from the backend: {raw[:200]!r}")
            return
        if not isinstance(message, dict):
            self._note(f"[client] ignored a non-object line from the backend: {raw[:200]!r}")
            return
        if "id" in message and ("result" in message or "error" in message):
            error = message.get("error")
            if error is not None:
                if not isinstance(error, dict):
                    error = {"message": str(error)}
                exc = BackendError(str(error.get("message", "unknown backend error")), code=error.get("code"))
                if not self._resolve(message["id"], error=exc):
                    self._note(f"[client] backend error for no pending request: {exc.message}")
                    self.notifications.put({"method": "protocol_error", "params": error})
            elif not self._resolve(message["id"], result=message.get("result")):
                self._note(f"[client] dropped a late reply for request {message['id']!r}")
            return
        if isinstance(message.get("method"), str):
            self.notifications.put({"method": message["method"], "params": message.get("params") or {}})
            return
        self._note(f"[client] ignored an unexpected message from the backend: {raw[:200]!r}")

    def _note(self, text: str) -> None:
        self.stderr_lines.append(text)
        self._log(text)

    def _log(self, text: str) -> None:
        if self.log_path is None:
            return
        try:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")
        except OSError:
            self.log_path = None

    def _read_stderr(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None
        handle = None
        if self.log_path is not None:
            try:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(self.log_path, "a", encoding="utf-8")
            except OSError:
                handle = None
        try:
            for raw in iter(stderr.readline, b""):
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self.stderr_lines.append(text)
                if handle is not None:
                    handle.write(text + "\n")
                    handle.flush()
        except (OSError, ValueError):
            pass
        finally:
            if handle is not None:
                handle.close()
