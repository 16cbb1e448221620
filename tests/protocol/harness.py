"""Helpers for protocol tests: the repo paths, the add-on's bpy-free modules, a raw-pipe server.

The add-on's modules come from its bpyfree package, whose imports never reach bpy, so these tests
never need Blender.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# Hang guard only: a reply that never comes fails the test instead of blocking the suite forever.
HANG_GUARD_S = 300.0
SMALL_MAX_BYTES = 1 << 20


def load_addon_module(name: str) -> ModuleType:
    """Import blender_addon.bpyfree.<name> (no bpy: the package __init__s import none; test_codec checks it)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module(f"blender_addon.bpyfree.{name}")


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class RawServer:
    """`python -m backend serve` (as the add-on starts it) on raw pipes: write any bytes, read parsed reply lines."""

    def __init__(self, *args: str, prelude: str = "") -> None:
        """`prelude` is Python run before the server's main() (used to patch in faults)."""
        entry = ["-m", "backend", "serve"] if not prelude else \
            ["-c", prelude + "\nimport sys\nfrom backend.serving.entry import main\nsys.exit(main(sys.argv[1:]))"]
        self.proc = subprocess.Popen([PYTHON, *entry, "--device", "cpu", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=REPO, env=server_env())
        self.messages: queue.Queue[Any] = queue.Queue()
        self.raw_lines: list[bytes] = []
        self.stderr: list[str] = []
        self.notifications: list[dict[str, Any]] = []
        self._ids = iter(range(10**6, 10**9))
        self.last_id = 0
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.raw_lines.append(raw)
            try:
                self.messages.put(json.loads(raw))
            except ValueError:
                self.messages.put({"__bad_line__": raw.decode("utf-8", "replace")})
        self.messages.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            self.stderr.append(raw.decode("utf-8", "replace").rstrip())

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data if data.endswith(b"\n") else data + b"\n")
        self.proc.stdin.flush()

    def next_message(self) -> dict[str, Any]:
        message = self.messages.get(timeout=HANG_GUARD_S)
        assert message is not None, "server closed stdout:\n" + "\n".join(self.stderr[-20:])
        assert "__bad_line__" not in message, f"non-protocol line on stdout: {message['__bad_line__']!r}"
        return message

    def reply_to(self, request_id: Any) -> dict[str, Any]:
        """Next reply with this id; notifications are collected, other replies are a test failure."""
        while True:
            message = self.next_message()
            if "id" not in message:
                self.notifications.append(message)
                continue
            assert message["id"] == request_id, f"unexpected reply {message} while waiting for {request_id}"
            return message

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = self.last_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(json.dumps(message).encode())
        return self.reply_to(request_id)

    def close(self) -> int:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            return self.proc.wait(HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
