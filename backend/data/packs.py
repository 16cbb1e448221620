"""Point packs: a whole data folder's sampled surface points in one .npz file, to train where the meshes are not.

A pack holds what training reads from a folder (unit-ball points, each shape's size, names relative to the
folder, labels), so
`train --data pack.npz` makes the same split and the same run as `train --data FOLDER` on a machine that has
neither the meshes nor the point cache: a GPU node, a cluster job. Points are stored as float16 (half the
size; their rounding, at most 2^-11 of a unit-ball coordinate, is far below any Chamfer we report).
The file is a plain .npz read without pickle, checked before use.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from backend.data.datasets import PointSets
from backend.errors import ConfigError, DataError, cannot_write
from backend.filemode import new_file_mode
from backend.limits import MAX_PACK_BYTES
from backend.regular import read_regular

PACK_SUFFIX = ".npz"
PACK_FORMAT = "atlasvae-points-1"
_KEYS = ("format", "points", "extents", "names", "labels")


def is_pack(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a pack (by its suffix): what --data accepts besides a folder."""
    return Path(path).suffix.lower() == PACK_SUFFIX


def check_pack_target(out: Path, force: bool) -> None:
    """Refuse a pack path without the pack suffix, an existing file without force, and anything not a file."""
    if not is_pack(out):
        raise ConfigError(f"--out {out}: a pack's name must end in {PACK_SUFFIX}")
    if out.exists() and not out.is_file():
        raise ConfigError(f"--out {out}: exists and is not a file")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite")


def write_pack(sets: PointSets, path: str | os.PathLike[str], force: bool = False) -> Path:
    """Write `sets` to the pack `path` atomically; an existing file needs force."""
    out = Path(path)
    check_pack_target(out, force)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, format=np.array(PACK_FORMAT), points=sets.points.astype(np.float16),
                     extents=sets.extents.astype(np.float32), names=np.array(sets.names, dtype=str), labels=np.array(sets.labels, dtype=str))
        os.chmod(tmp, new_file_mode(out))
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise cannot_write(out, exc) from None
    return out


def read_pack(path: str | os.PathLike[str]) -> PointSets:
    """The point sets in the pack `path` (as float32), refused with a DataError naming it when malformed."""
    src = Path(path).expanduser()
    data = read_regular(src, MAX_PACK_BYTES, DataError)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            missing = [k for k in _KEYS if k not in npz.files]
            if missing:
                raise DataError(f"--data {src}: not a point pack (missing {', '.join(missing)})")
            fmt, points, extents, names, labels = (npz[k] for k in _KEYS)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"--data {src}: not a readable point pack ({exc})") from None
    if str(fmt) != PACK_FORMAT:
        raise DataError(f"--data {src}: pack format {str(fmt)!r}, this version reads {PACK_FORMAT!r}")
    if points.ndim != 3 or points.shape[2] != 3 or points.shape[0] < 1 or points.shape[1] < 1:
        raise DataError(f"--data {src}: points must have shape (shapes, points, 3), got {points.shape}")
    if points.dtype.kind != "f" or not np.all(np.isfinite(points)):
        raise DataError(f"--data {src}: points must be finite floating-point numbers")
    count = points.shape[0]
    if extents.shape != (count, 3) or extents.dtype.kind != "f" or not np.all(np.isfinite(extents)) \
            or np.any(extents < 0):
        raise DataError(f"--data {src}: extents must be {count} finite sizes (x, y, z) >= 0, one per shape")
    for what, column in (("names", names), ("labels", labels)):
        if column.dtype.kind != "U" or column.shape != (count,):
            raise DataError(f"--data {src}: {what} must be {count} strings, one per shape")
    if len(set(names.tolist())) != count:
        raise DataError(f"--data {src}: shape names must be unique")
    return PointSets(points=points.astype(np.float32), extents=extents.astype(np.float32), names=names.tolist(),
                     labels=labels.tolist())
