"""Request lines from a raw file descriptor, with a bound on their length that never buffers a longer one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .protocol import ID_SCAN_BYTES


@dataclass
class TooLong:
    """A line longer than the limit, skipped; only its first and last bytes are kept, to recover its id."""

    head: bytes
    tail: bytes


class LineReader:
    """Splits a raw file descriptor into lines of at most `max_bytes`; longer ones are skipped, not buffered.

    A skipped line is returned as TooLong once it has ended. Reading the fd directly (not sys.stdin) keeps
    interpreter shutdown free of buffered-reader locks.
    """

    def __init__(self, fd: int, max_bytes: int, chunk: int = 1 << 16) -> None:
        self.fd, self.max_bytes, self.chunk = fd, max_bytes, chunk
        self._buf = bytearray()
        self._skipping: TooLong | None = None
        self._eof = False

    def __iter__(self) -> "LineReader":
        return self

    def __next__(self) -> Any:
        keep = ID_SCAN_BYTES
        while True:
            newline = self._buf.find(b"\n")
            if newline >= 0:
                line = bytes(self._buf[:newline])
                del self._buf[:newline + 1]
                if self._skipping is not None:
                    skipped, self._skipping = self._skipping, None
                    return TooLong(skipped.head, (skipped.tail + line)[-keep:])
                if len(line) > self.max_bytes:
                    return TooLong(line[:keep], line[-keep:])
                return line
            if self._skipping is not None:
                self._skipping.tail = (self._skipping.tail + self._buf)[-keep:]
                self._buf.clear()
            elif len(self._buf) > self.max_bytes:
                self._skipping = TooLong(bytes(self._buf[:keep]), bytes(self._buf[-keep:]))
                self._buf.clear()
            if self._eof:
                if self._skipping is not None:
                    skipped, self._skipping = self._skipping, None
                    return skipped
                if self._buf:
                    line = bytes(self._buf)
                    self._buf.clear()
                    return line
                raise StopIteration
            data = os.read(self.fd, self.chunk)
            if not data:
                self._eof = True
            self._buf += data
