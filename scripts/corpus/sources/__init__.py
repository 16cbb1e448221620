"""One reader per Debian package; each lists the package's object meshes as Candidates."""

from __future__ import annotations

from types import ModuleType

from . import flightgear, redeclipse, sweethome, ufoai, zeroad

# In build order: earlier sources win duplicate ties, so the most detailed (ShapeNet-like) source comes first.
SOURCES: dict[str, ModuleType] = {m.PACKAGE: m for m in (sweethome, zeroad, ufoai, flightgear, redeclipse)}
