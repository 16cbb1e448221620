"""The add-on's one backend process: what it is started with (LaunchConfig), the client plus the model it
holds (Backend, shared as `backend`), where it logs, and the words shown when a request to it fails.

Thread-safe and free of bpy: worker threads call it, and launch settings are read from preferences on
the main thread by the caller (operators.common.launch_config).
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import locate
from .client import BackendClient, BackendError, BackendTimeout

STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LaunchConfig:
    """Everything needed to start the backend, read from preferences on the main thread."""

    python_preference: str
    user_dir: Path
    device: str
    model_path: str | None
    models_dirs: tuple[Path, ...]

    def args(self) -> list[str]:
        """Command-line arguments for `python -m backend serve` (the client adds `serve` itself)."""
        args = ["--device", self.device]
        if self.model_path:
            args += ["--model", self.model_path]
        for folder in self.models_dirs:
            args += ["--models-dir", str(folder)]
        return args


def log_path(user_dir: Path) -> Path:
    """The backend's log file in the user folder."""
    return Path(user_dir) / "logs" / "backend.log"


def error_text(exc: BaseException) -> str:
    """The message to show for a failure: the backend's own words plus its last log lines if it died."""
    if isinstance(exc, BackendTimeout):
        return f"Backend did not answer in time: {exc.message}"
    if isinstance(exc, BackendError):
        text = exc.message or str(exc)
        tail = (exc.stderr_tail or "").strip().splitlines()
        if tail and exc.code is None:
            text += " | backend log: " + " / ".join(tail[-3:])
        return text
    return str(exc) or type(exc).__name__


class Backend:
    """The backend process (through BackendClient) plus which model it has loaded; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._client: BackendClient | None = None
        self._handshake: dict[str, Any] | None = None
        self._loaded: dict[str, Any] | None = None
        self._atexit = False
        self._launching = False

    @property
    def client(self) -> BackendClient | None:
        return self._client

    @property
    def handshake(self) -> dict[str, Any] | None:
        return self._handshake

    @property
    def loaded_model(self) -> dict[str, Any] | None:
        """Info of the model the backend holds (name, path, ...) or None."""
        return self._loaded

    def _make_client(self, config: LaunchConfig) -> BackendClient:
        python = locate.find_python(config.python_preference, config.user_dir)
        log = log_path(config.user_dir)
        log.parent.mkdir(parents=True, exist_ok=True)
        client = BackendClient(python, locate.backend_root(), args=config.args(), log_path=log)
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        return client

    def ensure(self, config: LaunchConfig) -> BackendClient:
        """The running client, starting (or restarting after a crash) the backend if needed."""
        with self._lock:
            self._launching = True
            try:
                if self._client is None:
                    self._client = self._make_client(config)
                client = self._client
                handshake = client.ensure_started()
            finally:
                self._launching = False
            if handshake is not self._handshake:  # a new process: learn what it loaded at start
                self._handshake = handshake
                model = handshake.get("model")
                self._loaded = model if isinstance(model, dict) else None
            return client

    def ensure_model(self, config: LaunchConfig) -> tuple[BackendClient, dict[str, Any]]:
        """The running client with the configured model loaded; returns (client, model info)."""
        with self._lock:
            client = self.ensure(config)
            wanted = config.model_path
            if wanted is None:
                raise locate.LocateError("No AtlasVAE model found: add one to the models folder or fine-tune one")
            if self._loaded is None or not _same_path(self._loaded.get("path"), wanted):
                self._loaded = None
                reply = client.call("load_model", {"path": wanted})
                self._loaded = reply["model"]
            assert self._loaded is not None
            return client, self._loaded

    def call(self, config: LaunchConfig, method: str, params: dict[str, Any],
             timeout: float | None = None) -> Any:
        """Start if needed, then one request."""
        client = self.ensure(config)
        return client.call(method, params, timeout=timeout)

    @property
    def running(self) -> bool:
        """True while the backend process is up (ready or busy)."""
        client = self._client
        return client is not None and client.state in ("ready", "busy")

    def set_loaded(self, info: dict[str, Any] | None) -> None:
        """Record the model the backend reports it loaded by itself (after a fine-tune)."""
        with self._lock:
            self._loaded = info

    def forget_model(self) -> None:
        """The backend dropped its model (release); the next model call loads it again."""
        with self._lock:
            self._loaded = None

    def drain(self) -> list[dict[str, Any]]:
        """Notifications received since the last drain (progress, job_done)."""
        client = self._client
        return client.drain_notifications() if client is not None else []

    def stop(self) -> None:
        """Stop the process and forget the client, so the next start reads preferences afresh."""
        with self._lock:
            client, self._client = self._client, None
            self._handshake = None
            self._loaded = None
        if client is not None:
            try:
                client.stop(STOP_TIMEOUT_S)
            except Exception as exc:  # stopping must never raise into Blender's shutdown
                print(f"AtlasVAE: stopping the backend failed: {exc}")

    def status(self) -> tuple[str, str]:
        """(state, human text) for the panel: stopped / starting / ready / busy / error."""
        client = self._client
        if self._launching and (client is None or client.state in ("stopped", "error")):
            return "starting", "Checking the Python interpreter and starting the backend"
        if client is None:
            return "stopped", "Not started (starts on first use)"
        state = client.state
        if state == "error":
            return state, str(client.last_error or "Backend failed")
        if state == "starting":
            return state, "Starting: loading torch and the model"
        if state == "stopped":
            return state, "Stopped (starts on next use)"
        device = (self._handshake or {}).get("device", "?")
        model = (self._loaded or {}).get("name", "no model")
        return state, f"{'Busy' if state == 'busy' else 'Ready'} on {device}, model {model}"


def _same_path(a: Any, b: Any) -> bool:
    if not a or not b:
        return False
    try:
        return Path(str(a)).resolve() == Path(str(b)).resolve()
    except OSError:
        return str(a) == str(b)


backend = Backend()
