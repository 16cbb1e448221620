"""The permission bits a file we write should get: the umask's for a new file, the old file's when replacing.

Temporary files from `tempfile.mkstemp` are private (0600); every writer chmods its temporary file with
`new_file_mode` before renaming it into place, so outputs are shared exactly as the user's umask says and
overwriting a file (--force) never changes who may read it.
"""

from __future__ import annotations

import os
import stat
import threading

_lock = threading.Lock()


def current_umask() -> int:
    """This process's umask, read without changing it where the OS allows (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def new_file_mode(path: str | os.PathLike[str]) -> int:
    """Mode for a file about to be written at `path`: the existing file's, else 0666 minus the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()
