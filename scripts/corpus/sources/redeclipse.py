"""redeclipse-data: Red Eclipse's map props and weapons (OBJ; IQM and MD5 via `assimp`): Y-up as read.

Player models (one file per animation), projectiles (also weapons' proj/ folders), cosmetic
attachments and animation-only files are left out. Licences differ per author folder and come from
the package's DEP-5 copyright file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ..common import Candidate, MeshArrays, Reader, categorise
from ..convert import with_assimp
from ..fetch import ensure_assimp
from ..licences import licence_of
from .sweethome import read_obj

PACKAGE = "redeclipse-data"
SHORT = "re"
# Red Eclipse's map props are about 7 cm a unit (an office chair 13.4 units high, a desk 9, a door 28, a
# copy-paper box 8 long; trees 103 units, rocks 24-38). Its pickup weapons are drawn at another scale
# (a rifle 1.6 units long) and come out too small at this one (docs/corpus.md, "Units").
METRES_PER_UNIT = 0.07
FOLDER = "usr/share/games/redeclipse/data"
COPYRIGHT = "usr/share/doc/redeclipse-data/copyright"
SKIP_FOLDERS = ("actors/player/", "projectiles/", "vanities/", "props/", "textures/", "maps/")
SUFFIXES = (".obj", ".iqm", ".md5mesh")
ANIMATION = re.compile(r"(^|_)(idle|open|close|move|flip)$")


def candidates(root: Path) -> Iterator[Candidate]:
    """Every model file outside the skipped folders; labels from the file and folder names."""
    data = root / FOLDER
    copyright_text = (root / COPYRIGHT).read_text(encoding="utf-8", errors="replace")
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in SUFFIXES)
    assimp = None
    for path in files:
        relative = path.relative_to(data).as_posix()
        if relative.startswith(SKIP_FOLDERS) or "/proj/" in relative:
            continue
        folders = relative.split("/")[:-1]
        stem = path.stem if path.stem not in ("model", "mesh", "tris") else folders[-1]
        animation = ANIMATION.search(path.stem) or "/flip/" in f"/{relative}"
        if assimp is None and path.suffix.lower() != ".obj":
            assimp = ensure_assimp()
        yield Candidate(source=PACKAGE, path=f"{FOLDER}/{relative}",
                        category=categorise(stem, *reversed(folders[1:])),
                        licence=licence_of(copyright_text, f"data/{relative}"),
                        read=_reader(assimp, path), up="y", title=stem,
                        reject="animation frame" if animation else None)


def _reader(assimp: str | None, path: Path) -> Reader:
    def read() -> MeshArrays:
        if path.suffix.lower() == ".obj":
            return read_obj(path.read_bytes(), path.name)
        return with_assimp(str(assimp), path)
    return read
