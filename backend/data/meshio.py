"""Mesh files in and out: load (OBJ, STL, PLY, OFF, glTF), validate, save, and unit-ball normalisation.

Every problem with a mesh becomes a MeshError whose message names the file (or array source) and says
what is wrong, so the add-on and the CLI can show it unchanged.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from backend.errors import MeshError, cannot_write
from backend.filemode import new_file_mode
from backend.limits import MAX_MESH_FILE_BYTES
from backend.regular import irregular_kind, read_regular

MESH_SUFFIXES: frozenset[str] = frozenset({".obj", ".stl", ".ply", ".off", ".glb", ".gltf"})

_FORMAT_NAMES = {".obj": "OBJ", ".stl": "STL", ".ply": "PLY", ".off": "OFF", ".glb": "GLB", ".gltf": "glTF"}
_TEXT_SUFFIXES = {".obj", ".off", ".gltf"}
_HEAD_BYTES = 4096

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


def normalisation_of(vertices: Any, faces: Any = None) -> Normalisation:
    """Centre on the vertex centroid and scale so the farthest vertex lies on the unit sphere.

    With `faces`, only the vertices some face uses count: a stray unused vertex must not shrink the shape.
    Computed in units of the largest coordinate offset, so coordinates near 1e+-200 neither overflow nor
    underflow.
    """
    v = _points_array(vertices, "vertices").reshape(-1, 3).astype(np.float64, copy=False)
    if faces is not None and len(v):
        v = v[np.unique(np.asarray(faces, dtype=np.int64))]
    if len(v) == 0:
        raise MeshError("cannot normalise an empty set of vertices")
    if not np.all(np.isfinite(v)):
        raise MeshError("cannot normalise: some vertices are NaN or infinite")
    center = v.mean(axis=0)
    offsets = v - center
    unit = float(np.abs(offsets).max())
    scale = unit * float(np.sqrt(((offsets / unit) ** 2).sum(axis=1).max())) if unit > 0.0 else 0.0
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
    tri = (v[f] - v.min(axis=0)) / extent  # in units of the extent: no overflow or underflow at 1e+-200
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    if not area > 1e-12:
        raise MeshError(f"{name}: all {len(f)} faces have zero area (the vertices are collinear)")
    return Mesh(vertices=v, faces=f)


def load_mesh(path: str | os.PathLike[str], max_faces: int = 2_000_000) -> Mesh:
    """Read a mesh file, flattening scenes (transforms applied) and triangulating polygons."""
    p = Path(path)
    if not p.exists():
        raise MeshError(f"mesh file not found: {p}")
    if p.is_dir():
        raise MeshError(f"{p} is a folder, not a mesh file")
    check_suffix(p, "unsupported mesh format")
    return parse_mesh(read_regular(p, MAX_MESH_FILE_BYTES, MeshError), p, max_faces)


def parse_mesh(data: bytes, p: Path, max_faces: int = 2_000_000) -> Mesh:
    """A mesh from the bytes of the file `p` (its suffix names the format); MeshError naming `p` otherwise.

    The bytes come from read_regular: nothing here opens `p` again (external glTF buffers and OBJ
    materials are read through the same check).
    """
    suffix = p.suffix.lower()
    fmt = _FORMAT_NAMES[suffix]
    size = len(data)
    if size == 0:
        raise MeshError(f"{p}: the file is empty (0 bytes)")
    head = data[:_HEAD_BYTES]
    problem = _sniff_problem(suffix, head, size)
    if problem:
        raise MeshError(f"{p}: not a readable {fmt} mesh: {problem}")
    hint = _face_count_hint(data, suffix, head, size)
    if hint is not None and hint > max_faces:
        raise MeshError(_too_many_faces(str(p), hint, max_faces))
    if suffix == ".off":
        vertices, faces, loose_points = *_off_arrays(data, p), 0
    else:
        try:
            scene = trimesh.load_scene(io.BytesIO(data), file_type=suffix[1:], process=False,
                                       resolver=_RegularResolver(str(p)))
        except MeshError:
            raise
        except Exception as exc:  # trimesh raises many unrelated types on malformed input
            raise MeshError(f"{p}: not a readable {fmt} mesh ({type(exc).__name__}: {exc})") from exc
        vertices, faces, loose_points = _flatten(scene)
    if len(faces) == 0:
        if len(vertices) == 0 and loose_points == 0:
            raise MeshError(f"{p}: no mesh data found (no vertices or faces) when read as {fmt}")
        count = max(len(vertices), loose_points)
        raise MeshError(f"{p}: has {count} vertices but no faces (a point cloud or wireframe?)")
    return validate_mesh(vertices, faces, name=str(p), max_faces=max_faces)


def check_suffix(p: Path, problem: str) -> str:
    """The lower-case suffix of `p` when it names a mesh format we read and write, else a MeshError."""
    suffix = p.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        supported = ", ".join(sorted(MESH_SUFFIXES))
        raise MeshError(f"{p}: {problem} '{p.suffix}' (supported: {supported})")
    return suffix


def printable(name: str) -> str:
    """A file name as valid UTF-8 text: bytes the file system gave that are not UTF-8 become backslash escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def not_regular_reason(path: str | os.PathLike[str]) -> str | None:
    """Why `path` (links followed) is not a regular file that can be read, without opening it; None if it is."""
    try:
        kind = irregular_kind(os.stat(path).st_mode)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None if kind is None else f"not a regular file ({kind})"


class _RegularResolver(trimesh.resolvers.FilePathResolver):
    """Files a mesh refers to (OBJ materials and textures, glTF buffers), read like the mesh: regular and bounded.

    trimesh names geometry after `file_name`, and hashes the names as UTF-8: a name that is not valid
    UTF-8 is shown with backslash escapes instead.
    """

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.file_name = printable(self.file_name)

    def get(self, name: str) -> bytes:
        return read_regular(self.absolute(name), MAX_MESH_FILE_BYTES, MeshError)


def _off_arrays(data: bytes, p: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and fan-triangulated faces of an OFF file (polygons of any size; colour columns ignored)."""
    def refuse(problem: str) -> MeshError:
        return MeshError(f"{p}: not a readable OFF mesh ({problem})")

    lines = [tokens for line in data.decode("utf-8", "replace").splitlines()
             if (tokens := line.split("#", 1)[0].split())]
    at = lines[0][0].upper().find("OFF") if lines else -1
    if at < 0:
        raise refuse("it does not start with the OFF keyword")
    # ModelNet writes some headers as "OFF490 518 0": the vertex count glued to the keyword.
    counts, rest = ([lines[0][0][at + 3:]] if lines[0][0][at + 3:] else []) + lines[0][1:], lines[1:]
    if len(counts) < 2 and rest:
        counts, rest = counts + rest[0], rest[1:]
    try:
        n_vertices, n_faces = int(counts[0]), int(counts[1])
        if len(rest) < n_vertices + n_faces:
            raise refuse(f"its header promises {n_vertices} vertices and {n_faces} faces but it has "
                         f"{len(rest)} lines of data")
        vertices = (np.array([line[:3] for line in rest[:n_vertices]], dtype=np.float64).reshape(n_vertices, -1)
                    if n_vertices > 0 else np.zeros((0, 3)))
        if vertices.shape[1:] != (3,):
            raise refuse("a vertex line has fewer than 3 coordinates")
        rows = rest[n_vertices:n_vertices + n_faces]
        sizes = [int(line[0]) for line in rows]
        if all(size == 3 and len(line) >= 4 for size, line in zip(sizes, rows)):  # the common case, vectorised
            return vertices.reshape(-1, 3), np.array([line[1:4] for line in rows], dtype=np.int64).reshape(-1, 3)
        triangles: list[list[int]] = []
        for k, (size, line) in enumerate(zip(sizes, rows), 1):
            if size < 3 or len(line) < size + 1:
                raise refuse(f"face {k} has {size} corners{'' if size < 3 else f' but lists {len(line) - 1}'}; "
                             f"a face needs at least 3")
            corners = [int(i) for i in line[1:size + 1]]
            triangles.extend([corners[0], corners[j], corners[j + 1]] for j in range(1, size - 1))
    except (ValueError, IndexError) as exc:
        raise refuse(f"{type(exc).__name__}: {exc}") from None
    return vertices.reshape(-1, 3), np.array(triangles, dtype=np.int64).reshape(-1, 3)


def save_mesh(path: str | os.PathLike[str], mesh: Mesh) -> None:
    """Write a mesh in the format its suffix names; the file is replaced atomically if it exists."""
    p = Path(path)
    suffix = check_suffix(p, "cannot save as")
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
    except BaseException:  # Ctrl-C mid-write: leave no temporary file beside the user's meshes
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


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


def _face_count_hint(data: bytes, suffix: str, head: bytes, size: int) -> int | None:
    """A cheap lower bound on the triangle count, read from headers, or None when unknown."""
    try:
        if suffix == ".stl":
            return struct.unpack_from("<I", head, 80)[0] if _is_binary_stl(head, size) else None
        if suffix == ".ply":
            return _ply_face_count(head)
        if suffix == ".off":
            return _off_face_count(head)
        if suffix == ".obj":
            return (b"\n" + data).count(b"\nf ")
        if suffix == ".glb":
            return _gltf_face_count(_glb_json(data))
        if suffix == ".gltf":
            return _gltf_face_count(json.loads(data))
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


def _glb_json(data: bytes) -> dict:
    length, kind = struct.unpack_from("<II", data, 12)
    if kind != 0x4E4F534A:  # "JSON"
        raise ValueError("first GLB chunk is not JSON")
    doc = json.loads(data[20:20 + length])
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
