"""sweethome3d-furniture: Sweet Home 3D's furniture catalogues (.sh3f zips of OBJ models).

Each catalogue's PluginFurnitureCatalog.properties lists models as `key#N=value` lines; `modelRotation#N`
is a row-major 3x3 matrix that turns the OBJ into the catalogue's Y-up frame, and is applied here.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import trimesh

from ..common import Candidate, MeshArrays, Reader, categorise, open_zip
from ..licences import licence_of

PACKAGE = "sweethome3d-furniture"
SHORT = "sh3d"
# Each catalogue entry gives the model's real width, depth and height in centimetres, and Sweet Home 3D
# shows the model at that size: every mesh is scaled to it (Candidate.size). 81 % of the OBJ files are
# already in centimetres; the others are in metres, decimetres or inches. This is the fallback for an
# entry without a size (none in 1.8-1). Evidence: docs/corpus.md, "Units".
METRES_PER_UNIT = 0.01
FOLDER = "usr/share/sweethome3d/furniture"
COPYRIGHT = "usr/share/doc/sweethome3d-furniture/copyright"  # DEP-5, one Files: stanza per catalogue
_ENTRY = re.compile(r"^(\w+)#(\d+)=(.*)$", re.M)


def parse_catalogue(text: str) -> list[dict[str, str]]:
    """The catalogue's entries in number order, each a {key: value} dict."""
    entries: dict[int, dict[str, str]] = {}
    for key, number, value in _ENTRY.findall(text):
        entries.setdefault(int(number), {})[key] = value.strip()
    return [entries[n] for n in sorted(entries)]


def rotation_of(entry: dict[str, str]) -> np.ndarray | None:
    """The entry's modelRotation as a 3x3 matrix, or None when it has none."""
    text = entry.get("modelRotation")
    if not text:
        return None
    values = [float(v) for v in text.split()]
    if len(values) != 9:
        raise ValueError(f"modelRotation {text!r}: expected 9 numbers")
    return np.array(values).reshape(3, 3)


def read_obj(data: bytes, name: str) -> MeshArrays:
    """Vertices and triangles of OBJ bytes (UTF-8, else Latin-1 text); materials are not read."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    mesh = trimesh.load(io.BytesIO(text.encode("utf-8")), file_type="obj", force="mesh", process=False,
                        skip_materials=True)
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError(f"{name}: no triangles in the OBJ")
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def size_of(entry: dict[str, str]) -> tuple[float, float, float] | None:
    """The entry's (width, depth, height) in metres, the model's Z-up (x, y, z) size; None if not all given."""
    try:
        width, depth, height = (float(entry[k]) * METRES_PER_UNIT for k in ("width", "depth", "height"))
    except (KeyError, ValueError):
        return None
    return width, depth, height


def candidates(root: Path) -> Iterator[Candidate]:
    """Every catalogue model, labelled from its name (else its catalogue category), with its rotation and
    real size."""
    copyright_text = (root / COPYRIGHT).read_text(encoding="utf-8", errors="replace")
    for archive in sorted((root / FOLDER).glob("*.sh3f")):
        licence = licence_of(copyright_text, f"{archive.stem}/{archive.name}")
        text = open_zip(archive).read("PluginFurnitureCatalog.properties").decode("latin-1")
        for entry in parse_catalogue(text):
            model = entry.get("model", "").lstrip("/")
            if not model.lower().endswith(".obj"):
                continue
            name = entry.get("name", "")
            door = entry.get("doorOrWindow") == "true"
            category = "door_window" if door else (categorise(name, Path(model).stem) or "misc")
            yield Candidate(source=PACKAGE, path=f"{FOLDER}/{archive.name}!{model}", category=category,
                            licence=licence, read=_reader(archive, model), rotation=rotation_of(entry), up="y",
                            title=name, size=size_of(entry))


def _reader(archive: Path, member: str) -> Reader:
    def read() -> MeshArrays:
        return read_obj(open_zip(archive).read(member), f"{archive.name}!{member}")
    return read
