"""Where the server's bytes go: the protocol keeps private copies of stdin/stdout, everything else
(stray prints from libraries included) goes to stderr and the log file."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("atlasvae.server")


def claim_stdio() -> tuple[int, int]:
    """Keep private copies of stdin/stdout for the protocol; fd 1 becomes stderr and fd 0 /dev/null."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    return proto_in, proto_out


def setup_logging(log_file: str | None) -> None:
    """Log to stderr, and also to `log_file` when it can be opened (a warning says so when not)."""
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
