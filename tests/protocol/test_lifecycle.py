"""Process lifecycle: exit on stdin close, shutdown and parent death; client start failures, a killed
backend, restart, timeouts and the busy state."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from .harness import HANG_GUARD_S, PYTHON, REPO, RawServer, server_env

posix_only = pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals and pipes")


def test_stdin_close_ends_server() -> None:
    server = RawServer()
    assert server.request("handshake")["result"]["protocol_version"] == 1
    assert server.close() == 0
    assert any("stdin closed" in line for line in server.stderr)


def test_shutdown_replies_then_exits() -> None:
    server = RawServer()
    assert server.request("shutdown") == {"jsonrpc": "2.0", "id": server.last_id, "result": {}}
    assert server.proc.wait(HANG_GUARD_S) == 0


INTERMEDIATE = """
import os, subprocess, sys
fd_in, fd_out, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
proc = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--device", "cpu", "--log-file", log,
                         "--parent-pid", str(os.getpid())], stdin=fd_in, stdout=fd_out)
print(proc.pid, flush=True)
proc.wait()
"""


def _read_line(fd: int) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], HANG_GUARD_S)
        assert ready, "no output from the server"
        chunk = os.read(fd, 1)
        if not chunk:
            return data
        data += chunk
    return data


@posix_only
def test_server_exits_when_parent_is_killed(tmp_path: Path) -> None:
    """The test keeps the server's stdin open, so only the parent watch can end it."""
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    log = tmp_path / "server.log"
    parent = subprocess.Popen([PYTHON, "-c", INTERMEDIATE, str(in_read), str(out_write), str(log)],
                              pass_fds=(in_read, out_write), stdout=subprocess.PIPE, cwd=REPO, env=server_env())
    os.close(in_read)
    os.close(out_write)
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        os.write(in_write, b'{"jsonrpc": "2.0", "id": 1, "method": "handshake"}\n')
        assert json.loads(_read_line(out_read))["result"]["pid"] == server_pid
        parent.kill()
        parent.wait()
        assert _read_line(out_read) == b""  # stdout closes only when the server process is gone
        assert f"parent process {parent.pid} is gone" in log.read_text()
    finally:
        os.close(in_write)
        os.close(out_read)
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_client_start_with_missing_python(client_module: ModuleType, tmp_path: Path) -> None:
    client = client_module.BackendClient(str(tmp_path / "no-python"), REPO)
    with pytest.raises(client_module.BackendError, match="cannot start the backend with Python"):
        client.start()
    assert client.state == "error" and "no-python" in client.last_error


def test_client_reports_backend_that_exits_at_start(client_module: ModuleType, tmp_path: Path) -> None:
    log = tmp_path / "client.log"
    client = client_module.BackendClient(PYTHON, REPO, args=["--device", "quantum"], log_path=log)
    with pytest.raises(client_module.BackendError) as info:
        client.start(timeout=HANG_GUARD_S)
    assert info.value.message == "backend exited with code 2"
    assert "invalid choice: 'quantum'" in info.value.stderr_tail
    assert "invalid choice: 'quantum'" in str(info.value)
    assert client.state == "error"
    assert "invalid choice" in log.read_text()


@posix_only
def test_client_notices_killed_backend_and_restarts(client_module: ModuleType) -> None:
    client = client_module.BackendClient(PYTHON, REPO, args=["--device", "cpu"])
    assert client.state == "stopped"
    try:
        info = client.start(timeout=HANG_GUARD_S)
        first_pid = client.pid
        assert info["pid"] == first_pid and client.state == "ready"

        os.kill(first_pid, signal.SIGSTOP)  # hold the reply back so the request is surely in flight
        pending = client.submit("handshake")
        assert client.state == "busy"
        with pytest.raises(client_module.BackendTimeout, match="did not answer 'list_models' within 0.2 s"):
            client.call("list_models", timeout=0.2)
        os.kill(first_pid, signal.SIGCONT)
        assert pending.result(HANG_GUARD_S)["pid"] == first_pid
        assert client.state == "ready"

        os.kill(first_pid, signal.SIGSTOP)
        pending = client.submit("list_models")
        os.kill(first_pid, signal.SIGKILL)
        with pytest.raises(client_module.BackendError) as failure:
            pending.result(HANG_GUARD_S)
        assert failure.value.message == "backend exited with code -9 (killed by SIGKILL)"
        assert "AtlasVAE backend" in failure.value.stderr_tail
        assert client.state == "error" and "code -9" in client.last_error
        with pytest.raises(client_module.BackendError, match="code -9"):
            client.call("handshake")

        restarted = client.ensure_started(timeout=HANG_GUARD_S)
        assert restarted["pid"] == client.pid != first_pid
        assert client.state == "ready" and client.last_error == ""
        assert client.ensure_started() is restarted
        assert client.call("list_models") == {"models": []}
    finally:
        client.stop()
    assert client.state == "stopped"


def test_client_stop_is_clean(client_module: ModuleType) -> None:
    client = client_module.BackendClient(PYTHON, REPO, args=["--device", "cpu"])
    client.start(timeout=HANG_GUARD_S)
    proc = client._session.proc
    client.stop()
    assert proc.returncode == 0
    assert client.state == "stopped"
    with pytest.raises(client_module.BackendError, match="backend stopped"):
        client.call("handshake")


def test_python_dash_m_backend_serve_help() -> None:
    out = subprocess.run([PYTHON, "-m", "backend", "serve", "--help"], cwd=REPO, env=server_env(),
                         capture_output=True, text=True, check=True)
    assert "--parent-pid" in out.stdout and "--max-message-bytes" in out.stdout
