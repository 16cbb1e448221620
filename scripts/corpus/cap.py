"""`python -m scripts.corpus.cap`: a per-category capped copy of a split folder, as hard links.

Buildings (712 train meshes) and trees (311) would otherwise make up 40 % of every epoch; a cap keeps
the small categories visible to the model and makes screening runs short. Which meshes stay is fixed
by the same seeded hash the split uses, so a cap is reproducible and a smaller cap is a subset of a
larger one.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from .split import _draw


def capped(src: Path, out: Path, per_category: int, seed: int = 0) -> dict[str, int]:
    """Link at most `per_category` meshes of each src/<category>/ into out/<category>/; counts per category."""
    if per_category < 1:
        raise ValueError(f"--per-category must be at least 1, got {per_category}")
    if not src.is_dir():
        raise ValueError(f"{src} is not a folder")
    if out.exists():
        shutil.rmtree(out)
    counts: dict[str, int] = {}
    for category in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(category.glob("*.obj"), key=lambda f: (_draw(seed, f.stem), f.stem))[:per_category]
        (out / category.name).mkdir(parents=True)
        for f in files:
            try:
                os.link(f, out / category.name / f.name)
            except OSError:
                shutil.copyfile(f, out / category.name / f.name)
        counts[category.name] = len(files)
    return counts


def main(argv: list[str] | None = None) -> int:
    """Make the capped copy and print its counts."""
    p = argparse.ArgumentParser(prog="python -m scripts.corpus.cap", description=__doc__)
    p.add_argument("--src", type=Path, required=True, help="a split folder, e.g. CORPUS/split/base/train")
    p.add_argument("--out", type=Path, required=True, help="the capped copy (replaced if it exists)")
    p.add_argument("--per-category", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        counts = capped(args.src, args.out, args.per_category, args.seed)
    except ValueError as exc:
        p.error(str(exc))
    print(f"{sum(counts.values())} meshes in {len(counts)} categories under {args.out}: "
          + ", ".join(f"{c} {n}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
