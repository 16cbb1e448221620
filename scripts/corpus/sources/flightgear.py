"""flightgear-data-models: FlightGear's scenery models (AC3D, Y-up), converted with the `assimp` command.

Only folders of whole objects are read (buildings, ships, trains, aircraft, ground vehicles); weather,
effects, astronomy, carrier-deck helpers and the parts under Geometry/ are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..common import Candidate, MeshArrays, Reader, categorise
from ..convert import with_assimp
from ..fetch import ensure_assimp

PACKAGE = "flightgear-data-models"
SHORT = "fg"
# FlightGear models are in metres: rolling stock is 2.5-2.8 m wide and 3.7-4.9 m high, a bus 10.5 m long.
METRES_PER_UNIT = 1.0
FOLDER = "usr/share/games/flightgear/Models"
LICENCE = "GPL-2+"
# Top folder (or folder/subfolder) -> category; a name keyword (e.g. "bus" under Transport) wins where given.
FOLDERS = {"Residential": "building", "Commercial": "building", "Agriculture": "building",
           "Buildings": "building", "Industrial": "building", "Power": "building",
           "Maritime/Military": "ship", "Maritime/Civilian": "ship", "Transport": "train",
           "Aircraft": "aircraft", "Airport/Pushback": "truck", "Airport/Vehicle": "truck", "Military": "truck"}
NOT_OBJECTS = ("strobe", "testpilot", "towropes", "groundtile", "Goldhofert-warning-light")


def category_of(relative: str) -> str | None:
    """The category of a model at `relative` (a path under Models/), or None for folders not read."""
    parts = relative.split("/")
    folder = FOLDERS.get("/".join(parts[:2])) or FOLDERS.get(parts[0])
    if folder is None or Path(relative).stem in NOT_OBJECTS:
        return None
    if folder == "train":
        return categorise(Path(relative).stem) if categorise(Path(relative).stem) == "truck" else "train"
    return folder


def candidates(root: Path) -> Iterator[Candidate]:
    """Every AC3D model in the object folders; the `assimp` command is installed first if missing."""
    models = root / FOLDER
    files = sorted(p for p in models.rglob("*.ac"))
    assimp = ensure_assimp()
    for path in files:
        relative = path.relative_to(models).as_posix()
        category = category_of(relative)
        if category is None:
            continue
        yield Candidate(source=PACKAGE, path=f"{FOLDER}/{relative}", category=category, licence=LICENCE,
                        read=_reader(assimp, path), up="y", title=path.stem)


def _reader(assimp: str, path: Path) -> Reader:
    def read() -> MeshArrays:
        return with_assimp(assimp, path)
    return read
