"""A PNG sheet of a few samples per label of a model (the model card's docs/base_samples_by_family.png).

Each row is one label's own prior (`sample --label`), so the sheet shows what every family looks like.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.reports import point_sheet  # noqa: E402
from backend.serving.service import ModelService  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "base")
    parser.add_argument("--per-label", type=int, default=4, help="samples per label (one row each)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "base_samples_by_family.png")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    service = ModelService(args.device)
    labels = service.load(args.model)["labels"]
    if not labels:
        parser.error(f"--model {args.model}: has no per-label priors to sample from")
    clouds, titles = [], []
    for label in labels:
        for i, mesh in enumerate(service.sample(args.per_label, args.seed, label=label)):
            clouds.append(mesh.vertices)
            titles.append(f"{label} {i}")
    point_sheet(clouds, args.out, titles, columns=args.per_label)
    print(f"wrote {args.out} ({len(labels)} labels x {args.per_label})")


if __name__ == "__main__":
    main()
