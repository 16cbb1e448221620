"""A sheet of what the Shape Explorer's directions do (issue 29), rendered in Blender with surface_sheet's
renderer:

    python -m bench.explore_sheet --out docs/explore_sheet.png --labels chair,table,car,aircraft,tree,weapon

One row per family: a sample of it (seed `--seed`), and one cell per direction of that family's own set
(backend/directions.py; the model-wide set for a family without one), each cell the shape at -2, 0 and +2
sigma along it (blue, grey, orange), scaled alike so that size changes show, captioned with the direction's
index and description. Closed surfaces, as an explore answers when a drag ends. Z is up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.data.meshio import Mesh
from bench.surface_sheet import render

AMOUNTS = (-2.0, 0.0, 2.0)
COLORS = ((0.42, 0.58, 0.85, 1.0), (0.7, 0.7, 0.7, 1.0), (0.88, 0.56, 0.32, 1.0))


def cells(model: Path, labels: list[str], directions: int, seed: int
          ) -> tuple[list[tuple[str, list[tuple[Mesh, ...]]]], list[list[str]]]:
    """For each label, one cell per direction (the shape at AMOUNTS sigma, in the unit ball) and its captions."""
    from backend.serving.service import ModelService

    service = ModelService("cpu")
    service.load(model)
    rows, captions = [], []
    for label in labels:
        (start,) = service.sample(1, seed=seed, label=label, size="unit", surface="patches")
        assert start.latent is not None
        family, chosen, _families = service.direction_set(label)
        row, notes = [], []
        for index in range(min(directions, len(chosen.sigma))):
            shapes = tuple(service.explore(start.latent, [(index, amount)], label=label, surface="closed")
                           for amount in AMOUNTS)
            row.append(tuple(Mesh(s.vertices, s.faces) for s in shapes))
            notes.append(f"{index}: {chosen.descriptions[index]}")
        rows.append((label if family is not None else f"{label} (model-wide)", row))
        captions.append(notes)
        print(f"{label}: {', '.join(notes)}", flush=True)
    return rows, captions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(__file__).resolve().parent.parent / "models" / "base")
    parser.add_argument("--labels", default="chair,table,car,aircraft,tree,weapon")
    parser.add_argument("--directions", type=int, default=4, help="the first N directions of each family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=2400)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows, captions = cells(args.model, args.labels.split(","), args.directions, args.seed)
    render(rows, args.out, args.width, colors=COLORS, sharp=(True, True, True), cell=1.5, gap=5.2, row_gap=2.2,
           reference=1, captions=captions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
