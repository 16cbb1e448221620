"""ufoai-data: UFO: Alien Invasion's models (MD2, Z-up; a few OBJ, Y-up) inside base/0models.pk3."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ..common import Candidate, MeshArrays, Reader, categorise, open_zip
from ..licences import licence_of
from ..md2 import read_md2
from .sweethome import read_obj

PACKAGE = "ufoai-data"
SHORT = "ufoai"
# About 3.3 cm a unit (a map cell is 32 units): the median of metres per unit over people (1.75 m /
# 47 units), cars (4.5 m / 137), beds, tables and chairs is 0.033 (docs/corpus.md, "Units").
METRES_PER_UNIT = 0.033
ARCHIVE = "usr/share/games/ufoai/base/0models.pk3"
# DEP-5; licences differ per model (GPL-2+, GPL-2, CC-BY-SA-3.0, public domain, ...).
COPYRIGHT = "usr/share/doc/ufoai-data/copyright"
# Folders that hold no stand-alone objects: globe icons, the intro's earth, weapon pods of the air war.
SKIP_FOLDERS = ("models/geoscape/", "models/sequence/", "models/aircraft/craft_")
# Pieces of a model rather than a model: heads and bodies of characters, crash parts, tree parts, roofs.
PART = re.compile(r"(^|_)(head\d*\w*|body\d*|part\d+|leaf|leaves\d*|blaetter\d*|stamm\d*|trunk\w*|branch|"
                  r"stem|bloom|roof\d*|bottom|turret|gun|int|int_top|pod\w*|top\w*|flying|rack|ammobox|extinguiser|"
                  r"seats|carryall|engine|down)$")


def candidates(root: Path) -> Iterator[Candidate]:
    """Every MD2/OBJ model outside the skipped folders; labels from the file and folder names."""
    archive = root / ARCHIVE
    copyright_text = (root / COPYRIGHT).read_text(encoding="utf-8", errors="replace")
    members = sorted(n for n in open_zip(archive).namelist() if n.lower().endswith((".md2", ".obj")))
    for member in members:
        if member.startswith(SKIP_FOLDERS):
            continue
        parts = member.split("/")
        stem = Path(member).stem
        reject = "part of a model" if PART.search(stem) else None
        category = categorise(stem, *reversed(parts[1:-1]))
        # MD2 models are Z-up (Quake's frame); the few OBJ files were exported Y-up.
        up = "y" if member.lower().endswith(".obj") else "z"
        yield Candidate(source=PACKAGE, path=f"{ARCHIVE}!{member}", category=category,
                        licence=licence_of(copyright_text, f"base/{member}"),
                        read=_reader(archive, member), up=up, reject=reject, title=stem)


def _reader(archive: Path, member: str) -> Reader:
    def read() -> MeshArrays:
        data = open_zip(archive).read(member)
        if member.lower().endswith(".obj"):
            return read_obj(data, member)
        vertices, faces, _frames = read_md2(data, member)
        return vertices, faces
    return read
