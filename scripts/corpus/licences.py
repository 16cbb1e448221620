"""Licence of a file from a Debian machine-readable copyright file (DEP-5): the last matching Files: stanza."""

from __future__ import annotations

import fnmatch
import re


def stanzas(text: str) -> list[tuple[list[str], str]]:
    """(file globs, licence name) of every Files: stanza, in file order."""
    found = []
    for block in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:\s*(.+(?:\n[ \t]+.+)*)", block, re.M)
        licence = re.search(r"^License:\s*(.+)$", block, re.M)
        if files and licence:
            found.append((files.group(1).split(), licence.group(1).strip()))
    return found


def licence_of(text: str, path: str, default: str = "unknown") -> str:
    """The licence DEP-5 gives `path` (relative to the upstream source): later stanzas override earlier."""
    result = default
    for globs, licence in stanzas(text):
        if any(fnmatch.fnmatchcase(path, g) for g in globs):
            result = licence
    return result
