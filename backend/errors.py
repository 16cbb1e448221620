"""User-facing error types: each carries a message that names the input and the problem."""


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
