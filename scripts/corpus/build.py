"""The build: for each source, fetch it, then read, clean, filter, deduplicate and write every candidate mesh.

Resumable: a candidate already written (its manifest exists) or already skipped (in rejected.jsonl) is
not read again, and kept meshes' descriptors are reloaded so duplicates are judged as in one full run.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from backend.data.meshio import Mesh, save_mesh

from . import filters
from .common import Candidate
from .fetch import fetch
from .manifest import MESHES, atomic_write_text, log_rejected, mesh_records, rejected_records
from .sources import SOURCES

PROGRESS_EVERY_S = 10.0


def mesh_id(short: str, candidate: Candidate) -> str:
    """A stable, readable file name: source, file stem, and a hash of the original path."""
    stem = candidate.path.rsplit("/", 1)[-1].split(".")[0]
    slug = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")[:40] or "mesh"
    return f"{short}-{slug}-{hashlib.sha1(candidate.path.encode()).hexdigest()[:8]}"


def key_of(candidate: Candidate) -> str:
    """What identifies a candidate across runs: package and original path."""
    return f"{candidate.source}:{candidate.path}"


def process(candidate: Candidate, metres_per_unit: float = 1.0
            ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | str:
    """Cleaned (vertices, faces, facts) of an acceptable mesh, or the reason it is not acceptable.

    The vertices stay in the file's units, so every filter and the duplicate descriptor see the file's
    numbers as they are; facts["metres_per_unit"] is the scale _write applies: the source's unit (its
    METRES_PER_UNIT), or for a candidate with a catalogue size the scale that fits it to that size."""
    if candidate.reject:
        return candidate.reject
    if candidate.category is None:
        return "no category"
    why = filters.name_reject(candidate.path)
    if why:
        return why
    try:
        vertices, faces = candidate.load()
    except (ValueError, KeyError, IndexError, OSError) as exc:
        return f"unreadable ({exc})"
    if len(faces) == 0 or not np.isfinite(vertices).all():
        return "unreadable (no faces or non-finite vertices)"
    scale = candidate.metres_per_unit(vertices, metres_per_unit)
    vertices, faces = filters.weld(vertices, faces)
    if len(faces) < filters.MIN_FACES:
        return "too few faces"
    vertices, faces, stray = filters.drop_stray_parts(vertices, faces)
    if filters.face_areas(vertices, faces).sum() <= 0:
        return "no surface area"
    flat = filters.flatness(vertices, faces)
    if flat < filters.FLAT_RATIO:
        return "flat"
    return vertices, faces, {"stray_parts_removed": stray, "flatness": round(flat, 4), "metres_per_unit": scale}


def build(out: Path, cache: Path, sources: Iterable[str], limit: int | None = None) -> dict[str, int]:
    """Build (or continue) the corpus in `out`; returns counts of what this run wrote and skipped."""
    (out / MESHES).mkdir(parents=True, exist_ok=True)
    index = filters.DuplicateIndex()
    done: set[str] = set()
    for record in mesh_records(out):
        if "metres_per_unit" not in record:
            continue  # written in its source's units by an older builder: read and written again, in metres
        index.add(record["id"], np.asarray(record["descriptor"], dtype=np.float32))
        done.add(record["key"])
    done.update(r["key"] for r in rejected_records(out))
    counts = {"written": 0, "skipped": 0, "already_done": 0}
    for package in sources:
        module = SOURCES[package]
        root, version = fetch(package, cache)
        todo = list(module.candidates(root))
        if limit is not None:
            todo = todo[:limit]
        t0 = last = time.monotonic()
        for i, candidate in enumerate(todo, 1):
            key = key_of(candidate)
            if key in done:
                counts["already_done"] += 1
                continue
            result = process(candidate, module.METRES_PER_UNIT)
            if isinstance(result, tuple):
                vertices, faces, facts = result
                desc = filters.descriptor(vertices, faces)
                dup = index.find(desc)
                if dup is None:
                    ident = mesh_id(module.SHORT, candidate)
                    _write(out, ident, key, candidate, version, vertices, faces, facts, desc)
                    index.add(ident, desc)
                    counts["written"] += 1
                else:
                    result = "duplicate"
                    facts = {"duplicate_of": dup[0], "distance": round(dup[1], 4)}
            if isinstance(result, str):
                log_rejected(out, {"key": key, "reason": result.split(" (")[0], "detail": result,
                                   "category": candidate.category, **(facts if result == "duplicate" else {})})
                counts["skipped"] += 1
            done.add(key)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S or i == len(todo):
                rate = i / max(now - t0, 1e-9)
                print(f"{package}: {i}/{len(todo)} candidates, {len(index)} meshes kept in all, "
                      f"~{(len(todo) - i) / rate:.0f} s left", file=sys.stderr, flush=True)
                last = now
    return counts


def _write(out: Path, ident: str, key: str, candidate: Candidate, version: str, vertices: np.ndarray,
           faces: np.ndarray, facts: dict[str, Any], desc: np.ndarray) -> None:
    """The OBJ (in metres) first, then its manifest: a manifest without its OBJ never exists, so a rerun
    redoes both."""
    folder = out / MESHES / str(candidate.category)
    folder.mkdir(parents=True, exist_ok=True)
    save_mesh(folder / f"{ident}.obj", Mesh(vertices * facts["metres_per_unit"], faces))
    record = {"id": ident, "key": key, "category": candidate.category, "source": candidate.source,
              "package_version": version, "licence": candidate.licence, "original_path": candidate.path,
              "title": candidate.title, "vertices": int(len(vertices)), "faces": int(len(faces)),
              "file": f"{MESHES}/{candidate.category}/{ident}.obj", **facts,
              "descriptor": [round(float(x), 6) for x in desc]}
    atomic_write_text(folder / f"{ident}.json", json.dumps(record, indent=1) + "\n")
