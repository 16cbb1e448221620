"""Issue 31's model choice: one table of validation figures for candidate models, best read side by side.

For each model folder: encoder-only reconstruction of every shape of the split (median Chamfer x1e-3 at
2 500 points, and its ratio to the median of the fitted ellipsoid, as bench/bench_base_v2.py measures it),
then `evaluate` (backend/evaluate.py) on at most --max-per-label shapes a family, the model's default prior
only: improved precision and recall, the samples' median distance to the nearest training shape over the
held-out shapes' (nearest-train ratio), the share of samples in pieces, 1-NNA-CD, COV-CD and the
reconstructions' normal consistency, all over the whole split ("all"). Definitions: docs/benchmarks.md,
"Definitions". Issue 31's targets: ratio <= 0.25, precision >= 0.6, recall >= 0.5, nearest-train ratio
<= 2, pieces <= 5 %.

    python -m bench.bench_v3_select models/base /work/data/runs/v3_a /work/data/runs/v3_b \\
        --corpus /work/data/corpus --train-data /work/data/capped/train300 --json /tmp/v3_val.json

Prints a markdown table (and each model's full report, per family too, into --json). Points are cached
where $ATLASVAE_CACHE says (else ~/.cache/atlasvae/points).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from backend.checkpoints import load_model
from backend.device import DEVICE_CHOICES, resolve_device
from backend.evaluate import evaluate_model
from bench.bench_base_v2 import load_part, reconstruction
from bench.common import machine

TARGETS = "targets: ratio <= 0.25, precision >= 0.6, recall >= 0.5, nearest-train ratio <= 2, pieces <= 5 %"


def measure(model: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Encoder-only medians over the whole split and evaluate's report on the capped split, for one model."""
    start = time.time()
    device = resolve_device(args.device)
    sets = load_part(folder, None)
    rec = reconstruction(load_model(model, device), sets, device)
    report = evaluate_model(model, data=str(folder), seed=args.seed, device=args.device,
                            train_data=args.train_data, max_per_label=args.max_per_label, default_only=True)
    return {"model": model, "encoder_only": rec["rows"], "evaluate": report, "seconds": time.time() - start}


def row(result: dict[str, Any]) -> str:
    """One table row: the split's overall figures for the model's default prior."""
    enc = result["encoder_only"]["all"]
    report = result["evaluate"]
    everything = report.get("all") or next(iter(report["groups"].values()))
    gen = everything[f"generation_{report['default_prior']}"]
    near = gen.get("nearest_train", {}).get("ratio")
    cells = [result["model"], f"{enc['encoder_median']:.2f}", f"{enc['ratio']:.2f}", f"{gen['precision']:.2f}",
             f"{gen['recall']:.2f}", "-" if near is None else f"{near:.2f}", _pct(gen["pieces_share"]),
             _pct(gen["nna_cd"]), _pct(gen["cov_cd"]), _num(everything.get("normal_consistency")),
             f"{result['seconds'] / 60:.1f}"]
    return "| " + " | ".join(cells) + " |"


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model folders to compare")
    parser.add_argument("--corpus", type=Path, default=Path("/work/data/corpus"),
                        help="corpus root; its split/base/<part> is measured")
    parser.add_argument("--part", default="val", choices=("val", "test"),
                        help="split to measure (default val: choose on val, report the chosen one on test once)")
    parser.add_argument("--train-data", help="training meshes for the nearest-train ratio "
                                             "(default: each model's recorded training data)")
    parser.add_argument("--max-per-label", type=int, default=10,
                        help="references per family for the generation figures (default 10; 0: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=DEVICE_CHOICES)
    parser.add_argument("--json", type=Path, help="write every model's full report here (a new file)")
    args = parser.parse_args()
    if args.json and args.json.exists():
        parser.error(f"--json {args.json}: exists; choose a new file")
    folder = args.corpus / "split" / "base" / args.part
    results = []
    print(f"{args.part} split {folder}, generation on at most {args.max_per_label or 'all'} shapes a family; "
          f"{machine()}\n{TARGETS}\n")
    print("| model | encoder CD x1e-3 | ratio to ellipsoid | precision | recall | nearest-train ratio | "
          "in pieces | 1-NNA-CD | COV-CD | normal consistency | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        results.append(measure(model, folder, args))
        print(row(results[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
