"""Mesh files in and out: load (OBJ, STL, PLY, OFF, glTF), validate, save, and unit-ball normalisation.

Every problem with a mesh becomes a MeshError whose message names the file (or array source) and says
what is wrong, so the add-on and the CLI can show it unchanged.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from backend.errors import MeshError, cannot_write
from backend.filemode import new_file_mode

MESH_SUFFIXES: frozenset[str] = frozenset({".obj", ".stl", ".ply", ".off", ".glb", ".gltf"})

_FORMAT_NAMES = {".obj": "OBJ", ".stl": "STL", ".ply": "PLY", ".off": "OFF", ".glb": "GLB", ".gltf": "glTF"}
_TEXT_SUFFIXES = {".obj", ".off", ".gltf"}
_HEAD_BYTES = 4096
_COUNT_CHUNK = 1 << 24

# Magic numbers of common files that are not meshes, so a renamed image gets a helpful message.
_FOREIGN_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BM", "a BMP image"),
)


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh: float64 (V, 3) vertices and int64 (F, 3) faces (indices into vertices)."""

    vertices: np.ndarray
    faces: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "vertices", np.ascontiguousarray(self.vertices, dtype=np.float64))
        faces = np.asarray(self.faces).astype(np.int64, casting="same_kind", copy=False)
        object.__setattr__(self, "faces", np.ascontiguousarray(faces))


@dataclass(frozen=True)
class Normalisation:
    """Similarity transform between a shape's own frame and the unit ball the model works in."""

    center: np.ndarray
    scale: float

    def apply(self, points: Any) -> np.ndarray:
        """Map points from the shape's frame into the unit ball (keeps a float dtype, else float64)."""
        p = _points_array(points, "points")
        return np.asarray((p - self.center) / self.scale, dtype=_float_dtype(p))

    def invert(self, points: Any) -> np.ndarray:
        """Map points from the unit ball back into the shape's frame."""
        p = _points_array(points, "points")
        return np.asarray(p * self.scale + self.center, dtype=_float_dtype(p))


def normalisation_of(vertices: Any) -> Normalisation:
    """Centre on the vertex centroid and scale so the farthest vertex lies on the unit sphere."""
    v = _points_array(vertices, "vertices").reshape(-1, 3).astype(np.float64, copy=False)
    if len(v) == 0:
        raise MeshError("cannot normalise an empty set of vertices")
    if not np.all(np.isfinite(v)):
        raise MeshError("cannot normalise: some vertices are NaN or infinite")
    center = v.mean(axis=0)
    scale = float(np.sqrt(((v - center) ** 2).sum(axis=1).max()))
    if not scale > 0.0:
        raise MeshError("cannot normalise: all vertices are at the same point (zero extent)")
    return Normalisation(center=center, scale=scale)


def validate_mesh(vertices: Any, faces: Any, name: str = "mesh", max_faces: int | None = None) -> Mesh:
    """Check arrays (e.g. from the wire) and return them as a Mesh; raise MeshError naming `name`."""
    v = _numeric_array(vertices, name, "vertices", kinds="iuf")
    f = _numeric_array(faces, name, "faces", kinds="iu")
    if v.ndim != 2 or v.shape[1] != 3:
        raise MeshError(f"{name}: vertices must have shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise MeshError(f"{name}: faces must have shape (F, 3) (triangles), got {f.shape}")
    if len(v) == 0:
        raise MeshError(f"{name}: the mesh is empty (no vertices)")
    if len(f) == 0:
        raise MeshError(f"{name}: has {len(v)} vertices but no faces (a point cloud or wireframe?)")
    if max_faces is not None and len(f) > max_faces:
        raise MeshError(_too_many_faces(name, len(f), max_faces))
    low, high = int(f.min()), int(f.max())
    if low < 0:
        raise MeshError(f"{name}: faces contain a negative vertex index ({low})")
    if high >= len(v):
        raise MeshError(f"{name}: faces refer to vertex {high} but there are only {len(v)} vertices")
    v = v.astype(np.float64, copy=False)
    bad = int((~np.isfinite(v).all(axis=1)).sum())
    if bad:
        raise MeshError(f"{name}: {bad} of {len(v)} vertices are NaN or infinite")
    extent = float(np.ptp(v, axis=0).max())
    if extent == 0.0:
        raise MeshError(f"{name}: all {len(v)} vertices are at the same point (zero extent)")
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    if area <= 1e-12 * extent * extent:
        raise MeshError(f"{name}: all {len(f)} faces have zero area (the vertices are collinear)")
    return Mesh(vertices=v, faces=f)


def load_mesh(path: str | os.PathLike[str], max_faces: int = 2_000_000) -> Mesh:
    """Read a mesh file, flattening scenes (transforms applied) and triangulating polygons."""
    p = Path(path)
    if not p.exists():
        raise MeshError(f"mesh file not found: {p}")
    if p.is_dir():
        raise MeshError(f"{p} is a folder, not a mesh file")
    problem = not_regular_reason(p)
    if problem:
        raise MeshError(f"{p}: {problem}")
    suffix = p.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        supported = ", ".join(sorted(MESH_SUFFIXES))
        raise MeshError(f"{p}: unsupported mesh format '{p.suffix}' (supported: {supported})")
    fmt = _FORMAT_NAMES[suffix]
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise MeshError(f"{p}: cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise MeshError(f"{p}: the file is empty (0 bytes)")
    problem = _sniff_problem(suffix, head, size)
    if problem:
        raise MeshError(f"{p}: not a readable {fmt} mesh: {problem}")
    hint = _face_count_hint(p, suffix, head, size)
    if hint is not None and hint > max_faces:
        raise MeshError(_too_many_faces(str(p), hint, max_faces))
    try:
        scene = trimesh.load_scene(str(p), file_type=suffix[1:], process=False)
    except Exception as exc:  # trimesh raises many unrelated types on malformed input
        raise MeshError(f"{p}: not a readable {fmt} mesh ({type(exc).__name__}: {exc})") from exc
    vertices, faces, loose_points = _flatten(scene)
    if len(faces) == 0:
        if len(vertices) == 0 and loose_points == 0:
            raise MeshError(f"{p}: no mesh data found (no vertices or faces) when read as {fmt}")
        count = max(len(vertices), loose_points)
        raise MeshError(f"{p}: has {count} vertices but no faces (a point cloud or wireframe?)")
    return validate_mesh(vertices, faces, name=str(p), max_faces=max_faces)


def not_regular_reason(path: str | os.PathLike[str]) -> str | None:
    """Why `path` (links followed) is not a regular file that can be read, without opening it; None if it is."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO / named pipe"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
    kind = next((what for test, what in kinds if test(mode)), "an unknown kind of file")
    return f"not a regular file ({kind})"


def save_mesh(path: str | os.PathLike[str], mesh: Mesh) -> None:
    """Write a mesh in the format its suffix names; the file is replaced atomically if it exists."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        supported = ", ".join(sorted(MESH_SUFFIXES))
        raise MeshError(f"{p}: cannot save as '{p.suffix}' (supported: {supported})")
    if not p.parent.is_dir():
        raise MeshError(f"{p}: cannot save, folder {p.parent} does not exist")
    tm = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, process=False)
    # Embedded buffers keep a .gltf self-contained instead of scattering .bin files next to it.
    if suffix == ".gltf":
        data = tm.export(file_type="gltf", embed_buffers=True)
    else:
        data = tm.export(file_type=suffix[1:])
    if isinstance(data, dict):
        data = next(iter(data.values()))
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        os.chmod(tmp, new_file_mode(p))
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, p)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise cannot_write(p, exc) from None


def _too_many_faces(name: str, count: int, limit: int) -> str:
    return (
        f"{name}: has {count:,} faces, more than the limit of {limit:,}; "
        "simplify it first (e.g. Blender's Decimate modifier)"
    )


def _numeric_array(value: Any, name: str, what: str, kinds: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise MeshError(f"{name}: {what} are not a regular numeric array ({exc})") from exc
    if arr.dtype.kind not in kinds:
        wanted = "integers" if kinds == "iu" else "numbers"
        raise MeshError(f"{name}: {what} must be {wanted}, got dtype {arr.dtype}")
    return arr


def _points_array(points: Any, what: str) -> np.ndarray:
    p = np.asarray(points)
    if p.dtype.kind not in "iuf" or p.ndim < 1 or p.shape[-1] != 3:
        raise MeshError(f"{what} must be a numeric array of shape (..., 3), got {p.dtype} {p.shape}")
    return p


def _float_dtype(p: np.ndarray) -> np.dtype:
    return p.dtype if p.dtype.kind == "f" else np.dtype(np.float64)


def _sniff_problem(suffix: str, head: bytes, size: int) -> str | None:
    """Cheap checks of the first bytes that catch wrong or damaged files before trimesh guesses."""
    for magic, what in _FOREIGN_MAGIC:
        if head.startswith(magic) and not (suffix == ".stl" and _is_binary_stl(head, size)):
            return f"the file is {what}, not a mesh (wrong file extension?)"
    if suffix in _TEXT_SUFFIXES and b"\x00" in head:
        return f"the file contains binary data but {_FORMAT_NAMES[suffix]} files are text"
    if suffix == ".ply" and not head.startswith(b"ply"):
        return "the file does not start with the 'ply' header"
    if suffix == ".glb" and not head.startswith(b"glTF"):
        return "the file does not start with the binary glTF magic 'glTF'"
    if suffix == ".gltf" and not head.lstrip().startswith(b"{"):
        return "the file is not JSON"
    if suffix == ".stl":
        return _stl_problem(head, size)
    return None


def _is_binary_stl(head: bytes, size: int) -> bool:
    return size >= 84 and len(head) >= 84 and size == 84 + 50 * struct.unpack_from("<I", head, 80)[0]


def _stl_problem(head: bytes, size: int) -> str | None:
    if _is_binary_stl(head, size):
        return None
    if head.lstrip().lower().startswith(b"solid"):
        return None
    if size < 84:
        return f"only {size} bytes, shorter than the 84-byte binary STL header"
    count = struct.unpack_from("<I", head, 80)[0]
    expected = 84 + 50 * count
    if size < expected:
        return (
            f"truncated binary STL: its header promises {count:,} triangles ({expected:,} bytes) "
            f"but the file has only {size:,} bytes"
        )
    return None


def _face_count_hint(p: Path, suffix: str, head: bytes, size: int) -> int | None:
    """A cheap lower bound on the triangle count, read from headers, or None when unknown."""
    try:
        if suffix == ".stl":
            return struct.unpack_from("<I", head, 80)[0] if _is_binary_stl(head, size) else None
        if suffix == ".ply":
            return _ply_face_count(head)
        if suffix == ".off":
            return _off_face_count(head)
        if suffix == ".obj":
            return _obj_face_count(p)
        if suffix == ".glb":
            return _gltf_face_count(_glb_json(p))
        if suffix == ".gltf":
            return _gltf_face_count(json.loads(p.read_bytes()))
    except (ValueError, KeyError, IndexError, TypeError, struct.error, OSError):
        return None
    return None


def _ply_face_count(head: bytes) -> int | None:
    for line in head.split(b"end_header")[0].splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == b"element" and parts[1] == b"face":
            return int(parts[2])
    return None


def _off_face_count(head: bytes) -> int | None:
    tokens: list[bytes] = []
    for line in head.splitlines():
        line = line.split(b"#")[0].strip()
        if line:
            tokens.extend(line.split())
        if len(tokens) >= 4:
            break
    if not tokens:
        return None
    keyword_at = tokens[0].upper().find(b"OFF")
    if keyword_at < 0:
        return None
    # ModelNet writes some headers as "OFF490 518 0": the vertex count glued to the keyword.
    glued = tokens[0][keyword_at + 3 :]
    counts = ([glued] if glued else []) + tokens[1:]
    return int(counts[1])


def _obj_face_count(p: Path) -> int:
    count = 0
    with p.open("rb") as fh:
        prev = b"\n"
        while chunk := fh.read(_COUNT_CHUNK):
            count += (prev[-2:] + chunk).count(b"\nf ")
            prev = chunk
    return count


def _glb_json(p: Path) -> dict:
    with p.open("rb") as fh:
        header = fh.read(20)
        length, kind = struct.unpack_from("<II", header, 12)
        if kind != 0x4E4F534A:  # "JSON"
            raise ValueError("first GLB chunk is not JSON")
        doc = json.loads(fh.read(length))
    if not isinstance(doc, dict):
        raise ValueError("GLB JSON chunk is not an object")
    return doc


def _gltf_face_count(doc: dict) -> int:
    accessors = doc.get("accessors", [])
    total = 0
    for mesh in doc.get("meshes", []):
        for prim in mesh.get("primitives", []):
            if prim.get("mode", 4) != 4:
                continue
            index = prim["indices"] if "indices" in prim else prim["attributes"]["POSITION"]
            total += int(accessors[index]["count"]) // 3
    return total


def _flatten(scene: trimesh.Scene) -> tuple[np.ndarray, np.ndarray, int]:
    """Concatenate every triangle geometry instance of a scene in world coordinates."""
    vertices: list[np.ndarray] = []
    faces: list[np.ndarray] = []
    loose_points = 0
    offset = 0
    for node in scene.graph.nodes_geometry:
        transform, geometry_name = scene.graph[node]
        geometry = scene.geometry.get(geometry_name)
        if isinstance(geometry, trimesh.Trimesh) and len(geometry.faces):
            v = trimesh.transform_points(np.asarray(geometry.vertices, dtype=np.float64), transform)
            vertices.append(v)
            faces.append(np.asarray(geometry.faces, dtype=np.int64) + offset)
            offset += len(v)
        elif geometry is not None and hasattr(geometry, "vertices"):
            loose_points += len(geometry.vertices)
    if not faces:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), loose_points
    return np.concatenate(vertices), np.concatenate(faces), loose_points
