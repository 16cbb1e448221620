"""A reader for 0 A.D.'s PMD model format (versions 3 and 4): the rest-pose triangle mesh.

Layout (little-endian): magic "PSMD", uint32 version, uint32 data size, uint32 vertex count, (version 4:
uint32 texture-coordinate sets per vertex), then per vertex a float32 position and normal, the UV sets
(float32 pairs; one set before version 4) and four bone indices (uint8) with four weights (float32);
then uint32 face count and three uint16 vertex indices per face. Bones and prop points follow; the
positions are already in the rest pose, so they are not needed here.
"""

from __future__ import annotations

import struct

import numpy as np

MAGIC = b"PSMD"


class PMDError(ValueError):
    """A file that is not a readable PMD model."""


def read_pmd(data: bytes, name: str = "pmd") -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float64, faces (F, 3) int64) of a PMD file."""
    if len(data) < 16 or data[:4] != MAGIC:
        raise PMDError(f"{name}: not a PMD file (magic {data[:4]!r}, expected {MAGIC!r})")
    version, _size, count = struct.unpack_from("<3I", data, 4)
    offset = 16
    if version >= 4:
        if len(data) < 20:
            raise PMDError(f"{name}: truncated header")
        (uv_sets,) = struct.unpack_from("<I", data, 16)
        offset = 20
    elif version == 3:
        uv_sets = 1
    else:
        raise PMDError(f"{name}: PMD version {version}, only 3 and 4 are known")
    stride = 24 + 8 * uv_sets + 4 + 16
    faces_at = offset + stride * count
    if count < 3 or faces_at + 4 > len(data):
        raise PMDError(f"{name}: {count} vertices do not fit in {len(data)} bytes")
    raw = np.frombuffer(data, dtype=np.uint8, count=stride * count, offset=offset).reshape(count, stride)
    vertices = raw[:, :12].copy().view("<f4").reshape(count, 3).astype(np.float64)
    (nfaces,) = struct.unpack_from("<I", data, faces_at)
    if nfaces < 1 or faces_at + 4 + 6 * nfaces > len(data):
        raise PMDError(f"{name}: {nfaces} faces do not fit in {len(data)} bytes")
    faces = np.frombuffer(data, dtype="<u2", count=3 * nfaces, offset=faces_at + 4).reshape(nfaces, 3)
    if int(faces.max()) >= count:
        raise PMDError(f"{name}: a face uses vertex {int(faces.max())} of {count}")
    return vertices, faces.astype(np.int64)
