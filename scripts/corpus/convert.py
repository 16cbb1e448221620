"""Formats trimesh cannot read (AC3D, IQM, MD5), converted to OBJ with the `assimp` command line tool."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .sources.sweethome import read_obj


def with_assimp(assimp: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of a model file, via `assimp export` to a temporary OBJ."""
    with tempfile.TemporaryDirectory(prefix="atlasvae-assimp-") as tmp:
        target = Path(tmp) / "model.obj"
        done = subprocess.run([assimp, "export", str(path), str(target)], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0 or not target.is_file():
            raise ValueError(f"{path.name}: assimp could not convert it ({done.stderr.strip()[-200:]})")
        return read_obj(target.read_bytes(), path.name)
