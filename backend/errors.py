"""User-facing error types: each carries a message that names the input and the problem."""

import errno
import os


class AtlasError(Exception):
    """An error caused by user input or the environment, safe to show to a person as is."""


class MeshError(AtlasError):
    """A mesh (file or arrays) that cannot be used: unreadable, empty, non-finite, degenerate."""


class CheckpointError(AtlasError):
    """A model folder or checkpoint that is missing, corrupt, truncated or mismatched."""


class ConfigError(AtlasError):
    """An invalid option or parameter value."""


class DataError(AtlasError):
    """A dataset that cannot be used, e.g. too few usable meshes in a folder."""


class BusyError(AtlasError):
    """A resource (output folder, job slot) already in use by another run."""


class Cancelled(AtlasError):
    """An operation stopped early because the user asked it to (not a failure)."""


class OutputError(AtlasError):
    """An output that cannot be written: no space left, no permission, a read-only file system."""


_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full; free some space and run the same command again (a training run resumes)",
    errno.EDQUOT: "the disk quota is used up; free some space and run the same command again",
    errno.EACCES: "no permission to write there; choose another output or fix the permissions",
    errno.EPERM: "no permission to write there; choose another output or fix the permissions",
    errno.EROFS: "the file system is read-only; choose another output",
}


def cannot_write(path: "str | os.PathLike[str]", exc: OSError) -> OutputError:
    """An OutputError naming `path`, what the OS said, and what to do about it."""
    hint = _WRITE_HINTS.get(exc.errno or 0)
    return OutputError(f"{path}: cannot write ({exc.strerror or exc}){f'; {hint}' if hint else ''}")
