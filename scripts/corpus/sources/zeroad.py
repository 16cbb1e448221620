"""0ad-data: 0 A.D.'s art meshes (.pmd, rest pose) inside mods/public/public.zip, Y-up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ..common import Candidate, MeshArrays, Reader, categorise, open_zip
from ..pmd import read_pmd

PACKAGE = "0ad-data"
SHORT = "0ad"
ARCHIVE = "usr/share/games/0ad/mods/public/public.zip"
LICENCE = "CC-BY-SA-3.0"
# 0 A.D.'s unit is about 0.45 m: its human bodies are 3.85 units tall (14 of 14 body meshes), horses
# 4.3-5.6 units high, elephants 8.25 (docs/corpus.md, "Units"). Props are drawn large for the game's
# camera (tables are 2.08 units high: 0.94 m at this scale).
METRES_PER_UNIT = 0.45
# Test and temporary meshes, and props that are attachments of other models (harness and armour of horses
# and elephants, heads, capes, standards, the decorations of helmets and shields) rather than objects.
SKIP_FOLDERS = tuple(f"art/meshes/{f}/" for f in (
    "test", "temp", "props/helmet/props", "props/shield/props", "props/new", "props/elephant", "props/horse",
    "props/armor", "props/heads", "props/special", "props/quivers", "props/standard", "props/campaigns"))
# Pieces of a model (a tree's leaves or trunk, a ship's sails, mast, ram or cargo, a building's roof or
# props) are not objects.
PART = re.compile(r"(^|_)(leaves|trunks?|branches|stilts|needles|sails?|shrouds|shields|roof|props?\w*|decor|"
                  r"nature|banner|turf|tiles?\w*|tent|base|pivot|water|transp|fruit|plants|reliefs|door|"
                  r"tran|struct_b|cape\w*|rope\w*|oars?|flag\w*|back|\w*sail|mast|blanket|cargo|basket|"
                  r"(trireme|bireme|ship)_ram)(_?[a-z]?\d*)$")


def candidates(root: Path) -> Iterator[Candidate]:
    """Every .pmd outside test/temp/decoration folders; labels from the file and folder names."""
    archive = root / ARCHIVE
    members = sorted(n for n in open_zip(archive).namelist() if n.lower().endswith(".pmd"))
    for member in members:
        if member.startswith(SKIP_FOLDERS):
            continue
        stem = Path(member).name.split(".")[0]
        folders = member.split("/")[2:-1]
        reject = "part of a model" if PART.search(stem) else None
        category = categorise(stem, *reversed(folders))
        yield Candidate(source=PACKAGE, path=f"{ARCHIVE}!{member}", category=category, licence=LICENCE,
                        read=_reader(archive, member), up="y", reject=reject, title=stem)


def _reader(archive: Path, member: str) -> Reader:
    def read() -> MeshArrays:
        return read_pmd(open_zip(archive).read(member), member)
    return read
