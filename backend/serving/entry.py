"""`serve`: the stdio JSON-RPC backend the Blender add-on drives (see docs/architecture.md, wire protocol).

`python -m backend serve` lands in main() here: it parses the command line, claims stdio, starts the
server (backend/serving/dispatcher.py), a reader thread and the parent watch, and waits until something
stops it. No network listener.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

from .. import PROTOCOL_VERSION, __version__
from ..errors import AtlasError
from ..limits import DEVICE_CHOICES
from .dispatcher import Server
from .lifetime import install_signals, watch_parent
from .lines import LineReader, TooLong
from .protocol import DEFAULT_MAX_MESSAGE_BYTES
from .stdio import claim_stdio, setup_logging

log = logging.getLogger("atlasvae.server")


def build_parser() -> argparse.ArgumentParser:
    """The `serve` command line (the add-on passes --parent-pid, --models-dir, --device, --log-file)."""
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
    proto_in, proto_out = claim_stdio()
    setup_logging(args.log_file)
    log.info("AtlasVAE backend %s (protocol %d), pid %d, python %s", __version__, PROTOCOL_VERSION,
             os.getpid(), sys.version.split()[0])
    try:
        from .service import ModelService

        service = ModelService(device=args.device)
    except AtlasError as exc:
        log.error("cannot start: %s", exc)
        return 2
    except ImportError as exc:
        log.error("cannot start: the backend's Python environment is incomplete (%s: %s); install the "
                  "backend requirements into %s", type(exc).__name__, exc, sys.executable)
        return 2
    server = Server(service, proto_out, models_dirs=args.models_dir)
    install_signals(server, args.parent_pid)
    log.info("device %s", service.device)
    if args.model:
        server.load_at_start(args.model)
    if args.parent_pid is not None:
        threading.Thread(target=watch_parent, args=(server, args.parent_pid), name="atlasvae-parent-watch",
                         daemon=True).start()
    threading.Thread(target=read_loop, args=(server, proto_in, args.max_message_bytes), name="atlasvae-reader",
                     daemon=True).start()
    while not server.stop_event.wait(1.0):
        pass
    clean = server.close()
    log.info("exiting (%s)", server.stop_reason)
    logging.shutdown()
    if not clean:
        os._exit(0)
    return 0


def read_loop(server: Server, fd: int, max_bytes: int) -> None:
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
