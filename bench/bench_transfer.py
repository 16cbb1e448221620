"""Transfer: fine-tuning the base model on a family it never saw vs training from scratch.

Writes the held-out family as mesh files (the folder path an artist uses), fine-tunes from the base
model and trains from scratch with each command's defaults for the same epochs, then reports both
validation-Chamfer curves (table + PNG) and the fine-tune's wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from backend.data.procedural import write_dataset
from backend.training.config import TrainConfig
from backend.training.loop import run
from bench.common import machine

REPO = Path(__file__).resolve().parent.parent


def train(out: Path, data: Path, epochs: int, init: Path | None, seed: int) -> tuple[list[dict], float]:
    cfg = TrainConfig(out=str(out), data=str(data), init=str(init) if init else None, epochs=epochs,
                      lr=5e-4 if init else 1e-3, sheet_every=0, device="cpu", seed=seed, force=True,
                      cache_dir=str(out.parent / "cache"))
    t = time.perf_counter()
    run(cfg, progress=lambda e: None)
    elapsed = time.perf_counter() - t
    return json.loads((out / "history.json").read_text()), elapsed


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, hist in curves.items():
        ax.plot([h["epoch"] for h in hist], [h["val_chamfer"] for h in hist], marker="o", ms=3, label=name)
    ax.set(xlabel="epoch", ylabel="validation Chamfer x1e-3", yscale="log",
           title="held-out family: fine-tune from base vs from scratch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--family", default="lamp")
    parser.add_argument("--shapes", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--base", type=Path, default=REPO / "models" / "base")
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "bench_transfer")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "transfer_curves.png")
    args = parser.parse_args()
    data = args.workdir / "data"
    if not data.is_dir():
        write_dataset(data, [args.family], args.shapes, seed=1000)
    finetuned, ft_s = train(args.workdir / "finetune", data, args.epochs, args.base, 0)
    scratch, sc_s = train(args.workdir / "scratch", data, args.epochs, None, 0)
    print(f"machine: {machine()}")
    print(f"fine-tune {args.shapes} {args.family} meshes for {args.epochs} epochs: {ft_s:.0f} s "
          f"(from scratch: {sc_s:.0f} s)")
    print("| epoch | fine-tuned val CD x1e-3 | from scratch val CD x1e-3 |")
    print("|---|---|---|")
    for f, s in zip(finetuned, scratch):
        print(f"| {f['epoch']} | {f['val_chamfer']:.3f} | {s['val_chamfer']:.3f} |")
    better = all(f["val_chamfer"] < s["val_chamfer"] for f, s in zip(finetuned, scratch))
    print(f"fine-tuned lower at every epoch: {better}")
    plot({"fine-tuned from base": finetuned, "from scratch": scratch}, args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
