"""Mesh <-> wire dict for the backend protocol, numpy only (no bpy, no torch).

Format (same as backend/serving/protocol.py): base64 of little-endian float32 vertices (V*3) and int32 faces
(F*3), with "vertex_count" and "face_count".
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

import numpy as np


def encode_mesh(vertices: Any, faces: Any) -> dict[str, Any]:
    """(V, 3) vertices and (F, 3) triangle indices -> wire dict; raises ValueError on bad shapes."""
    v = np.asarray(vertices)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3) (triangles), got {f.shape}")
    if f.size and (f.dtype.kind not in "iu" or int(f.min()) < 0 or int(f.max()) > np.iinfo(np.int32).max):
        raise ValueError("faces must be non-negative integer vertex indices that fit in int32")
    v32 = np.ascontiguousarray(v, dtype="<f4")
    f32 = np.ascontiguousarray(f, dtype="<i4")
    return {"vertices": base64.b64encode(v32.tobytes()).decode("ascii"),
            "faces": base64.b64encode(f32.tobytes()).decode("ascii"),
            "vertex_count": int(v32.shape[0]), "face_count": int(f32.shape[0])}


def base64_bytes(text: Any, what: str) -> bytes:
    """The bytes of a base64 field of a reply; ValueError naming `what` when it is not base64 text."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64 ({exc})") from None


def _array(obj: Mapping[str, Any], key: str, count_key: str, dtype: str) -> np.ndarray:
    count = obj.get(count_key)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"mesh {count_key!r} must be a non-negative integer, got {count!r}")
    raw = base64_bytes(obj.get(key), f"mesh {key!r}")
    if len(raw) != count * 12:
        raise ValueError(f"mesh {key!r} holds {len(raw)} bytes but {count_key} {count} needs {count * 12}")
    return np.frombuffer(raw, dtype=dtype).reshape(count, 3).astype(dtype[1:], copy=True)


def decode_mesh(obj: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Wire dict -> (vertices (V, 3) float32, faces (F, 3) int32), native byte order, writable copies."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"mesh must be a dict, got {type(obj).__name__}")
    vertices = _array(obj, "vertices", "vertex_count", "<f4")
    faces = _array(obj, "faces", "face_count", "<i4")
    if faces.size and (int(faces.min()) < 0 or int(faces.max()) >= len(vertices)):
        raise ValueError(f"mesh faces refer to vertices outside 0..{len(vertices) - 1}")
    return vertices, faces
