"""`python -m scripts.corpus.sizes`: median sizes of objects of known real size, per source, in a built corpus.

The evidence for each source's unit (`METRES_PER_UNIT` in its reader): people, chairs, doors, cars, ...
have well-known sizes, so the median of their bounding boxes in a source's files says what one unit is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

# category -> (measure, typical metres, title words that must match or None): height is the z extent,
# length the larger horizontal extent. Doors are picked from door_window by their title.
REFERENCES: dict[str, tuple[str, float, str | None]] = {
    "person": ("height", 1.75, None),
    "chair": ("height", 0.9, None),
    "table": ("height", 0.75, None),
    "door_window": ("height", 2.0, "door"),
    "bed": ("length", 2.0, None),
    "car": ("length", 4.5, None),
    "horse": ("length", 2.2, None),
}


def obj_extents(path: Path) -> np.ndarray:
    """(x, y, z) bounding-box size of an OBJ file's vertices, in its own units."""
    rows = [line.split()[1:4] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("v ")]
    extent: np.ndarray = np.ptp(np.asarray(rows, dtype=np.float64), axis=0)  # numpy's stubs: Any
    return extent


def measure(corpus: Path) -> list[dict[str, Any]]:
    """One row per (source, reference category) with any meshes: count, median measure, implied metres per unit."""
    records = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))["meshes"]
    rows = []
    for category, (what, metres, word) in REFERENCES.items():
        for source in sorted({r["source"] for r in records}):
            chosen = [r for r in records if r["category"] == category and r["source"] == source
                      and (word is None or word in r["title"].lower() or word in r["original_path"].lower())]
            if not chosen:
                continue
            sizes = [obj_extents(corpus / r["file"]) for r in chosen]
            values = [float(s[2]) if what == "height" else float(max(s[0], s[1])) for s in sizes]
            mid = median(values)
            rows.append({"category": category, "source": source, "meshes": len(chosen), "measure": what,
                         "median": round(mid, 3), "typical_m": metres,
                         "metres_per_unit": round(metres / mid, 4) if mid > 0 else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table as text (or JSON)."""
    p = argparse.ArgumentParser(prog="python -m scripts.corpus.sizes", description=__doc__)
    p.add_argument("--corpus", type=Path, required=True, help="a built corpus folder (with manifest.json)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    if not (args.corpus / "manifest.json").is_file():
        p.error(f"--corpus {args.corpus}: no manifest.json (build the corpus first)")
    rows = measure(args.corpus)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'category':<12} {'source':<24} {'n':>4} {'measure':<7} {'median':>9} {'typical m':>9} {'m/unit':>8}")
    for r in rows:
        print(f"{r['category']:<12} {r['source']:<24} {r['meshes']:>4} {r['measure']:<7} {r['median']:>9.3f} "
              f"{r['typical_m']:>9.2f} {r['metres_per_unit'] or 0:>8.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
