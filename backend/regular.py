"""Reading a file that comes from a model folder or a data folder: a regular file, and at most `limit` bytes.

Such folders are shared between users, so a file in one may be a FIFO (reading it blocks for good), a link
to /dev/zero (reading it never ends) or a huge sparse file. The file is opened without blocking and checked
on the open descriptor, so one swapped in after any earlier check is still never read; every reader of such
files goes through `read_regular` before anything else touches the file.
"""

from __future__ import annotations

import os
import stat
from typing import Callable

from .errors import AtlasError

_CHUNK = 1 << 20
_KINDS = ((stat.S_ISFIFO, "a FIFO / named pipe"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def irregular_kind(mode: int) -> str | None:
    """What a file of this st_mode is when it is not a regular file ("a FIFO / named pipe", ...); None if it is."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "an unknown kind of file")


def read_regular(path: str | os.PathLike[str], limit: int, error: type[AtlasError] = AtlasError,
                 between_chunks: Callable[[], None] = lambda: None) -> bytes:
    """The bytes of `path` (links followed) if it is a regular file of at most `limit` bytes, else `error`
    naming the path and the problem. `between_chunks` runs between 1 MiB reads (a cancel check)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise error(f"{os.fsdecode(path)}: cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        kind = irregular_kind(info.st_mode)
        if kind is not None:
            raise error(f"{os.fsdecode(path)}: not a regular file ({kind})")
        if info.st_size > limit:
            raise error(f"{os.fsdecode(path)}: {info.st_size:,} bytes, more than the limit of {limit:,}")
        chunks, total = [], 0
        try:
            while chunk := fh.read(min(_CHUNK, limit + 1 - total)):
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise error(f"{os.fsdecode(path)}: grew past the limit of {limit:,} bytes while being read")
                between_chunks()
        except OSError as exc:
            raise error(f"{os.fsdecode(path)}: cannot be read ({exc.strerror or exc})") from None
    return b"".join(chunks)
