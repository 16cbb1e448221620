"""Per-mesh manifests beside each mesh, the log of skipped candidates, and the corpus-wide JSON/CSV manifest."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

MESHES = "meshes"
REJECTED = "rejected.jsonl"
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
CSV_FIELDS = ("id", "category", "source", "package_version", "licence", "original_path", "title", "vertices",
              "faces", "stray_parts_removed", "file")


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a cut-short run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


def mesh_records(out: Path) -> Iterator[dict[str, Any]]:
    """Every per-mesh manifest under out/meshes (one JSON beside each OBJ), in path order."""
    for path in sorted((out / MESHES).glob("*/*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if (path.with_suffix(".obj")).is_file():
            yield record


def rejected_records(out: Path) -> Iterator[dict[str, Any]]:
    """Every skipped candidate logged so far (a torn last line from a killed run is ignored)."""
    path = out / REJECTED
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def log_rejected(out: Path, record: dict[str, Any]) -> None:
    """Append one skipped candidate to the log (flushed at once, so a rerun does not redo it)."""
    with (out / REJECTED).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def write_corpus_manifest(out: Path) -> dict[str, Any]:
    """Write manifest.json and manifest.csv from the per-mesh manifests; returns the summary part."""
    records = [{k: v for k, v in r.items() if k != "descriptor"} for r in mesh_records(out)]
    rejected = list(rejected_records(out))
    summary = {
        "meshes": len(records),
        "per_category": dict(sorted(Counter(r["category"] for r in records).items())),
        "per_source": dict(sorted(Counter(r["source"] for r in records).items())),
        "per_licence": dict(sorted(Counter(r["licence"] for r in records).items())),
        "packages": {r["source"]: r["package_version"] for r in records},
        "skipped": dict(sorted(Counter(r["reason"] for r in rejected).items())),
    }
    atomic_write_text(out / MANIFEST_JSON, json.dumps({"summary": summary, "meshes": records}, indent=1) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(out / MANIFEST_CSV, buf.getvalue())
    return summary
