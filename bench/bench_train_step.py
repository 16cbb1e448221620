"""Training step time before and after the on-device batches (backend/training/batches.py), in one run.

"before" is the loop's earlier step: the surface points picked in numpy on the host and copied to the
device, the output checked and the three losses read back as floats every step. "after" is the loop's
step now: the points picked from the packs on the device (the same points: batches.PointPacks), the
losses kept on the device and read back every LOSS_READ_EVERY steps. Both train the same architecture
(models/base's: 8 square patches) on the same synthetic clouds; the two alternate round by round so a
change in the machine's load falls on both, and the ratio is taken per round. Also times the pick alone
and one loss-curve redraw (once an epoch before, now at most once per PLOT_EVERY_S seconds).

    OMP_NUM_THREADS=1 python -m bench.bench_train_step --rounds 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from backend.data.datasets import CACHE_POINTS
from backend.device import DEVICE_CHOICES, resolve_device
from backend.inference import pick_points
from backend.losses import chamfer_per_shape, kl_divergence
from backend.model import AtlasVAE, ModelConfig
from backend.reports import plot_history
from backend.templates import random_points
from backend.training.batches import LOSS_READ_EVERY, PLOT_EVERY_S, LossWindow, PointPacks, batches
from backend.training.distributed import Solo
from bench.common import machine, median_time


def clouds(shapes: int, seed: int = 0) -> np.ndarray:
    """`shapes` clouds of CACHE_POINTS points on ellipsoids of random proportions, in the unit ball."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((shapes, CACHE_POINTS, 3))
    p /= np.linalg.norm(p, axis=2, keepdims=True)
    p *= rng.uniform(0.3, 1.0, (shapes, 1, 3))
    unit: np.ndarray = (p / np.linalg.norm(p, axis=2).max(axis=1)[:, None, None]).astype(np.float32)
    return unit


def trainer(points: np.ndarray, batch: int, count: int, device: torch.device,
            after: bool) -> Callable[[int], None]:
    """A function running `steps` training steps the earlier way (after=False) or the current way."""
    torch.manual_seed(0)
    model = AtlasVAE(ModelConfig(template="squares", patches=8)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    group = Solo(device)
    packs = PointPacks(points, device)
    window = LossWindow(group)
    rng = np.random.default_rng(0)
    order = batches(len(points), batch, rng)

    def steps(n: int) -> None:
        nonlocal order
        for done in range(1, n + 1):
            idx = next(order, None)
            if idx is None:
                order = batches(len(points), batch, rng)
                idx = next(order)
            if after:
                x, _ = packs.pick(idx, count, rng)
            else:
                x = torch.as_tensor(pick_points(points[idx], count, rng), device=device)
            template = random_points("squares", 8, count, device=device)
            pred, mu, logvar = model(x, template)
            if (not after or device.type == "cpu") and not torch.isfinite(pred).all():
                raise RuntimeError("non-finite output")
            cd = chamfer_per_shape(pred, x).mean()
            kl = kl_divergence(mu, logvar)
            loss = cd + 1e-5 * kl
            if not after:
                values = [float(v.detach()) for v in (loss, cd, kl)]
                if not math.isfinite(values[0]):
                    raise RuntimeError("non-finite loss")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after:
                window.add(0, done, (loss, cd, kl), len(x), len(x))
                if window.due(done) or done == n:
                    window.read()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=int, default=256, help="training shapes (default 256)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--points", type=int, default=1024, help="points per shape per step")
    parser.add_argument("--steps", type=int, default=2 * LOSS_READ_EVERY, help="steps a round per variant")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=DEVICE_CHOICES)
    args = parser.parse_args()
    device = resolve_device(args.device)
    points = clouds(args.shapes)
    print(f"machine: {machine()}; device {device}")
    print(f"{args.shapes} shapes of {CACHE_POINTS} points, batch {args.batch}, {args.points} points a shape, "
          f"{args.steps} steps a round, {args.rounds} rounds, before and after alternating")
    before, after = trainer(points, args.batch, args.points, device, False), \
        trainer(points, args.batch, args.points, device, True)
    before(2), after(2)  # warm-up
    rounds: list[tuple[float, float]] = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        before(args.steps)
        b = (time.perf_counter() - t) / args.steps
        t = time.perf_counter()
        after(args.steps)
        rounds.append((b, (time.perf_counter() - t) / args.steps))
        print(f"  round: before {rounds[-1][0]:.3f} s/step, after {rounds[-1][1]:.3f} s/step", flush=True)
    b_med, a_med = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
    ratio = statistics.median(r[1] / r[0] for r in rounds)
    print(f"step: before {b_med:.3f} s, after {a_med:.3f} s (medians of {args.rounds} rounds); "
          f"after / before per round, median {ratio:.3f}")
    idx = np.arange(args.batch)
    packs, rng = PointPacks(points, device), np.random.default_rng(1)
    t_np, _ = median_time(lambda: torch.as_tensor(pick_points(points[idx], args.points, rng), device=device),
                          repeats=21, warmup=2)
    t_dev, _ = median_time(lambda: packs.pick(idx, args.points, rng), repeats=21, warmup=2)
    print(f"pick alone: numpy then copy {1e3 * t_np:.2f} ms, on the device {1e3 * t_dev:.2f} ms (medians of 21)")
    history = [{"epoch": e + 1, "loss": 0.01, "chamfer": 10.0 / (e + 1), "kl": 140.0, "val_chamfer": 12.0 / (e + 1)}
               for e in range(80)]
    with tempfile.TemporaryDirectory() as tmp:
        t_plot, _ = median_time(lambda: plot_history(history, Path(tmp) / "loss_curve.png"), repeats=5, warmup=1)
    print(f"loss-curve redraw (80 epochs): {t_plot:.2f} s, before once an epoch, now at most once per "
          f"{PLOT_EVERY_S:g} s and at the last epoch")


if __name__ == "__main__":
    main()
