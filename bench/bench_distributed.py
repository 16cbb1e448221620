"""Data-parallel training throughput (shapes/s): one process against N torchrun processes on this machine.

Each configuration runs `python -m backend train` (under torchrun for N > 1) on the same procedural set
with the same global batch, and throughput is read from the run's own history: shapes trained per second
from the end of the first epoch to the end of the last (start-up, data loading and the first, warm-up
epoch are left out; the per-epoch checkpoint that rank 0 writes is included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from backend.training.output import HISTORY_FILE
from bench.common import machine

ROOT = Path(__file__).resolve().parent.parent


def throughput(procs: int, threads: int, flags: list[str], batch: int) -> float:
    """Shapes per second of one training run with `procs` processes of `threads` threads each."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] if procs > 1 else []
        cmd = [sys.executable, *launcher, "-m", "backend", "train", *flags, "--out", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        history = json.loads((out / HISTORY_FILE).read_text())
        state = json.loads((out / "train_state.json").read_text())
    shapes_per_epoch = state["meta"]["train_shapes"] // batch * batch
    seconds = history[-1]["time_s"] - history[0]["time_s"]
    return (len(history) - 1) * shapes_per_epoch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", default="1,2", help="process counts to compare, e.g. 1,2,4")
    parser.add_argument("--procedural", default="sword,plane,chair,mug:32")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch, the same for every run")
    parser.add_argument("--points", type=int, default=1024)
    args = parser.parse_args()
    flags = ["--procedural", args.procedural, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
             "--points", str(args.points), "--val-fraction", "0", "--sheet-every", "0", "--device", "cpu"]
    cores = os.cpu_count() or 1
    print(f"machine: {machine()}")
    print(f"data {args.procedural}, global batch {args.batch_size}, {args.points} points, default architecture, "
          f"epochs 2..{args.epochs} timed")
    # One process with every core, one with a single thread (what each torchrun process gets), then N.
    runs = [(1, cores), (1, 1)] + [(n, max(1, cores // n)) for n in (int(p) for p in args.procs.split(","))]
    for procs, threads in dict.fromkeys(runs):
        rate = throughput(procs, threads, flags, args.batch_size)
        print(f"{procs} process(es) x {threads} thread(s): {rate:7.1f} shapes/s", flush=True)


if __name__ == "__main__":
    main()
