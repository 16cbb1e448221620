"""A contact sheet of corpus meshes (surface points, Z up, seen from the front-left) to check labels and axes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from backend.data.meshio import load_mesh
from backend.data.sampling import sample_surface

from .manifest import mesh_records


def render_sheet(paths: list[Path], titles: list[str], out: Path, columns: int = 8, points: int = 1500) -> None:
    """Render each mesh's surface points in its own 3-D panel, Z up, equal axes; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(paths) // columns))
    fig = plt.figure(figsize=(2.0 * columns, 2.1 * rows), dpi=80)
    for i, (path, title) in enumerate(zip(paths, titles)):
        mesh = load_mesh(path)
        p = sample_surface(mesh, points, np.random.default_rng(0))
        p = p - (p.min(axis=0) + p.max(axis=0)) / 2
        r = float(np.abs(p).max()) or 1.0
        ax = fig.add_subplot(rows, columns, i + 1, projection="3d")
        ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=0.5, c=p[:, 2], cmap="viridis")
        ax.set_xlim(-r, r), ax.set_ylim(-r, r), ax.set_zlim(-r, r)
        ax.view_init(elev=15, azim=-60)
        ax.set_axis_off()
        ax.set_title(title[:24], fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """`python -m scripts.corpus.sheet --corpus DIR --out sheet.png [--per-category N] [--source PKG]`."""
    p = argparse.ArgumentParser(prog="python -m scripts.corpus.sheet", description=__doc__)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-category", type=int, default=1)
    p.add_argument("--source", help="only meshes from this package")
    p.add_argument("--categories", help="comma-separated categories (default: all)")
    args = p.parse_args(argv)
    wanted = set(args.categories.split(",")) if args.categories else None
    taken: dict[str, int] = {}
    paths, titles = [], []
    for r in mesh_records(args.corpus):
        if (args.source and r["source"] != args.source) or (wanted and r["category"] not in wanted):
            continue
        if taken.get(r["category"], 0) < args.per_category:
            taken[r["category"]] = taken.get(r["category"], 0) + 1
            paths.append(args.corpus / r["file"])
            titles.append(f"{r['category']}: {r['title'] or r['id']}")
    if not paths:
        print("error: no meshes match", file=sys.stderr)
        return 2
    render_sheet(paths, titles, args.out)
    print(f"wrote {args.out} ({len(paths)} meshes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
