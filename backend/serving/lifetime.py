"""When the server stops besides stdin closing or `shutdown`: SIGTERM/SIGINT, and the parent process's end
(polled, and on Linux also signalled through PR_SET_PDEATHSIG)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from typing import Any

from .dispatcher import Server
from .process import pid_alive

log = logging.getLogger("atlasvae.server")

PARENT_POLL_S = 0.5


def watch_parent(server: Server, pid: int) -> None:
    """Stop the server once process `pid` is gone (run on its own thread)."""
    while not server.stop_event.wait(PARENT_POLL_S):
        if not pid_alive(pid):
            server.request_stop(f"parent process {pid} is gone")
            return


def install_signals(server: Server, parent_pid: int | None) -> None:
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
