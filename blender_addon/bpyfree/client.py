"""BackendClient: runs the AtlasVAE backend as a subprocess and talks JSON-RPC to it over stdio.

Standard library only (no bpy, no torch) so plain pytest can drive it and Blender's Python can import
it. Replies resolve futures on a reader thread (session.py, one Session per process); notifications
queue up for the UI to drain from a timer; a dead backend fails every pending request with its exit code
and last log lines, never hangs.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Mapping, Sequence

from .session import TAIL_LINES, BackendError, BackendTimeout, Pending, Session

PROTOCOL_VERSION = 1
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class BackendClient:
    """Owns the backend subprocess: start, requests as futures, notifications, restart and stop.

    `backend_root` is the folder that contains the `backend` package (the repository root in
    development, the add-on folder when installed); it becomes the working directory and PYTHONPATH.
    """

    def __init__(self, python: str, backend_root: str | Path, args: Sequence[str] = (),
                 env: Mapping[str, str | None] | None = None, log_path: str | Path | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.python = str(python)
        self.backend_root = Path(backend_root)
        self.args = [str(a) for a in args]
        self.env = dict(env or {})
        self.log_path = Path(log_path) if log_path else None
        self.max_message_bytes = max_message_bytes
        self._session: Session | None = None
        self._lifecycle = threading.RLock()
        self._notifications: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._last_error = ""
        self._starting = False

    # ---- status -------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """"stopped", "starting", "ready", "busy" (requests in flight) or "error" (see last_error)."""
        session = self._session
        if self._starting:
            return "starting"
        if session is None:
            return "error" if self._last_error else "stopped"
        if session.closed or session.proc.poll() is not None:
            if not session.stopping and not self._last_error and session.close_error is not None:
                self._last_error = str(session.close_error)
            return "error" if self._last_error or not session.stopping else "stopped"
        return "busy" if session.pending else "ready"

    @property
    def last_error(self) -> str:
        """Text of the last start failure or unexpected exit ("" if none)."""
        self.state  # refreshes _last_error from a session that died
        return self._last_error

    @property
    def handshake(self) -> dict[str, Any] | None:
        """The running backend's handshake result (device, model, models, versions)."""
        session = self._session
        return session.handshake if session is not None else None

    @property
    def pid(self) -> int | None:
        session = self._session
        return session.proc.pid if session is not None else None

    def stderr_tail(self, lines: int = TAIL_LINES) -> str:
        """The backend's last `lines` lines of stderr (kept across an unexpected exit)."""
        session = self._session
        return session.tail(lines) if session is not None else ""

    # ---- lifecycle ----------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        return [self.python, "-m", "backend", "serve", *self.args, "--parent-pid", str(os.getpid())]

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP")}
        env.update({"PYTHONPATH": str(self.backend_root), "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)
        return env

    def start(self, timeout: float = 120.0) -> dict[str, Any]:
        """Spawn the backend and wait for its handshake; returns the handshake result."""
        with self._lifecycle:
            if self._session is not None and not self._session.closed and self._session.proc.poll() is None:
                raise BackendError("backend is already running; call stop() first or use ensure_started()")
            self._discard_session()
            self._starting = True
            self._last_error = ""
            try:
                return self._start(timeout)
            except BackendError as exc:
                self._last_error = str(exc)
                raise
            finally:
                self._starting = False

    def _start(self, timeout: float) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | 0x08000000  # CREATE_NO_WINDOW
        else:
            kwargs["start_new_session"] = True  # a Ctrl+C meant for Blender must not kill a checkpoint write
        if not self.backend_root.is_dir():
            raise BackendError(f"backend folder {str(self.backend_root)!r} does not exist")
        try:
            proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, cwd=str(self.backend_root), env=self._environment(),
                                    **kwargs)
        except OSError as exc:
            raise BackendError(f"cannot start the backend with Python {self.python!r}: "
                               f"{exc.strerror or exc}") from None
        session = Session(proc, self.log_path, self.max_message_bytes, self._notifications)
        self._session = session
        session._log(f"--- backend started: pid {proc.pid}: {' '.join(self._command())}")
        future = session.submit("handshake", {}, None)
        try:
            info = future.result(timeout)
        except FutureTimeout:
            self._kill(session)
            raise BackendTimeout(f"backend did not finish starting within {timeout:g} s",
                                 stderr_tail=session.tail()) from None
        except BackendError:
            self._kill(session)
            raise
        version = info.get("protocol_version") if isinstance(info, dict) else None
        if not isinstance(info, dict) or version != PROTOCOL_VERSION:
            self._stop_session(session, 5.0)
            raise BackendError(f"backend speaks protocol version {version!r} but this add-on needs "
                               f"{PROTOCOL_VERSION}; install matching versions of the add-on and backend")
        session.handshake = info
        session.ready = True
        return info

    def ensure_started(self, timeout: float = 120.0) -> dict[str, Any]:
        """Return the running backend's handshake, starting (or restarting a dead) backend if needed."""
        with self._lifecycle:
            session = self._session
            if session is not None and session.ready and not session.closed and session.proc.poll() is None:
                assert session.handshake is not None
                return session.handshake
            return self.start(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the backend to shut down, then terminate and finally kill it if it does not exit."""
        with self._lifecycle:
            session = self._session
            if session is None:
                return
            self._stop_session(session, timeout)
            self._last_error = ""

    def _stop_session(self, session: Session, timeout: float) -> None:
        session.stopping = True
        if session.proc.poll() is None and not session.closed:
            try:
                session.submit("shutdown", {}, None).result(timeout)
            except (BackendError, FutureTimeout):
                pass
        self._close_stdin(session)
        try:
            session.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill(session)
        session.stdout_thread.join(timeout=5.0)
        session.fail_all(BackendError("backend stopped"))

    @staticmethod
    def _close_stdin(session: Session) -> None:
        stdin = session.proc.stdin
        if stdin is None:
            return
        try:
            with session.write_lock:
                stdin.close()
        except OSError:
            pass

    def _kill(self, session: Session) -> None:
        session.stopping = True
        if session.proc.poll() is None:
            session.proc.terminate()
            try:
                session.proc.wait(3.0)
            except subprocess.TimeoutExpired:
                session.proc.kill()
                session.proc.wait()
        self._close_stdin(session)

    def _discard_session(self) -> None:
        session = self._session
        if session is not None:
            self._close_stdin(session)
            session.stdout_thread.join(timeout=5.0)
            for pipe in (session.proc.stdout, session.proc.stderr):
                if pipe is not None:
                    pipe.close()

    def __enter__(self) -> "BackendClient":
        self.ensure_started()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- requests -----------------------------------------------------------------------------------
    def submit(self, method: str, params: Mapping[str, Any] | None = None, timeout: float | None = None) -> Pending:
        """Send a request; the Future resolves to its result or fails with BackendError / BackendTimeout. Its
        `request_id` is the id the backend's notifications about this request name."""
        session = self._session
        if session is None:
            future = Pending()
            future.set_exception(BackendError(self._last_error or "backend is not running; call start() first"))
            return future
        return session.submit(method, params, timeout)

    def in_flight(self) -> int:
        """How many sent requests still await their reply (0 when the backend is not running)."""
        session = self._session
        if session is None:
            return 0
        with session.lock:
            return len(session.pending)

    def call(self, method: str, params: Mapping[str, Any] | None = None, timeout: float | None = None) -> Any:
        """Send a request and wait for its result; raises BackendError (BackendTimeout past `timeout`)."""
        return self.submit(method, params, timeout).result()

    def drain_notifications(self) -> list[dict[str, Any]]:
        """All notifications received since the last drain, oldest first ({"method", "params"} dicts)."""
        out = []
        while True:
            try:
                out.append(self._notifications.get_nowait())
            except queue.Empty:
                return out


__all__ = ["BackendClient", "BackendError", "BackendTimeout", "PROTOCOL_VERSION"]
