"""Real faults for tests: a tiny tmpfs to fill up (ENOSPC) or mount read-only (EROFS)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


def mounted_tmpfs(mount: Path, size: int, read_only: bool = False) -> Iterator[Path]:
    """Mount a `size`-byte tmpfs at `mount` for the duration of a fixture; skips when not root."""
    mount.mkdir(parents=True, exist_ok=True)
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill the file system of `disk` so that about `leave` bytes stay free; returns the filler file."""
    filler = disk / "filler"
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def unwritable_folder(path: Path) -> Iterator[Path]:
    """A folder nothing can be written into: a read-only tmpfs as root, else a folder without write permission."""
    if os.name == "posix" and os.geteuid() == 0:
        yield from mounted_tmpfs(path, 1 << 20, read_only=True)
        return
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)
