"""Train several candidate models side by side within a wall-clock budget (maintainers; a lent GPU's minutes).

Each candidate is one `python -m backend train` process on the same point pack. They start with a long epoch
count; once every one has finished `--probe-epochs` epochs, each is stopped (Ctrl-C keeps its checkpoint) and
resumed with as many epochs as its measured pace fits into what is left of the budget. The learning-rate
schedule follows the final epoch count (its drops come at 80 % and later, after any probe), so a candidate
trains as a fresh run of that length would. Each finished folder is archived as NAME.tar.gz into --archive
(split into parts when larger than --part-mib, for transports with a file-size limit).

    python -m scripts.train_candidates --pack train300.npz --root runs/v3 --budget-s 330 --archive $OUT \\
        --candidate p8="--patches 8" --candidate p16="--patches 16" -- --template squares --points 2500
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARCHIVED = ("config.json", "model.safetensors", "history.json", "loss_curve.png", "train.log")


@dataclass
class Candidate:
    """One training run: its name, its own flags, its process and its measured pace."""

    name: str
    flags: list[str]
    out: Path
    proc: subprocess.Popen[bytes] | None = None
    epoch_s: float = math.nan
    epochs: int = 0
    log: list[str] = field(default_factory=list)


def parse_candidate(text: str) -> tuple[str, list[str]]:
    """'NAME=FLAGS' -> (NAME, [flags])."""
    name, sep, flags = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"--candidate {text!r}: expected NAME=\"FLAGS\"")
    return name, shlex.split(flags)


def launch(c: Candidate, pack: Path, common: list[str], epochs: int, resume: bool) -> None:
    """Start (or resume) candidate `c` for `epochs` epochs, appending to its log."""
    cmd = [sys.executable, "-m", "backend", "train", "--data", str(pack), "--out", str(c.out),
           "--epochs", str(epochs), *common, *c.flags, "--resume" if resume else "--force"]
    c.log.append(" ".join(cmd))
    with open(c.out.parent / f"{c.name}.log", "ab") as log:  # the child keeps its own copy of the handle
        c.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def epochs_done(c: Candidate) -> list[dict]:
    """The history the run has written so far ([] before its first epoch)."""
    try:
        return list(json.loads((c.out / "history.json").read_text()))
    except (OSError, ValueError):
        return []


def stop(c: Candidate, wait_s: float) -> None:
    """Ctrl-C the candidate (it saves a checkpoint after its current step), kill it if it lingers."""
    if c.proc is None or c.proc.poll() is not None:
        return
    c.proc.send_signal(signal.SIGINT)
    try:
        c.proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        c.proc.kill()
        c.proc.wait()


def archive(c: Candidate, dest: Path, part_bytes: int) -> list[Path]:
    """NAME.tar.gz of the model folder's files in `dest`, split into NAME.tar.gz.partNN when too large."""
    (c.out / "train.log").write_text("\n".join(c.log) + "\n" + (c.out.parent / f"{c.name}.log").read_text(
        errors="replace"))
    tgz = dest / f"{c.name}.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name in ARCHIVED:
            if (c.out / name).is_file():
                tar.add(c.out / name, arcname=f"{c.name}/{name}")
    if tgz.stat().st_size <= part_bytes:
        return [tgz]
    data, parts = tgz.read_bytes(), []
    for i in range(0, len(data), part_bytes):
        part = dest / f"{c.name}.tar.gz.part{i // part_bytes:02d}"
        part.write_bytes(data[i:i + part_bytes])
        parts.append(part)
    tgz.unlink()
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", type=Path, required=True, help="point pack (python -m backend pack)")
    parser.add_argument("--root", type=Path, required=True, help="folder for the run folders and logs")
    parser.add_argument("--budget-s", type=float, required=True, help="seconds from start to every run done")
    parser.add_argument("--finish-s", type=float, default=45.0,
                        help="seconds kept back at the end for fitting priors and saving (default 45)")
    parser.add_argument("--probe-epochs", type=int, default=3, help="epochs that measure each run's pace")
    parser.add_argument("--max-epochs", type=int, default=1000, help="never more epochs than this")
    parser.add_argument("--candidate", type=parse_candidate, action="append", required=True,
                        help="NAME=\"FLAGS\" (repeat); FLAGS are added to the common ones")
    parser.add_argument("--archive", type=Path, help="write NAME.tar.gz of each finished run here")
    parser.add_argument("--part-mib", type=int, default=15, help="split archives larger than this (MiB)")
    parser.add_argument("common", nargs=argparse.REMAINDER, help="after --: flags every candidate gets")
    args = parser.parse_args()
    start = time.monotonic()
    common = [a for a in args.common if a != "--"]
    args.root.mkdir(parents=True, exist_ok=True)
    runs = [Candidate(name, flags, args.root / name) for name, flags in args.candidate]
    for c in runs:
        launch(c, args.pack, common, args.max_epochs, resume=False)
    deadline = start + args.budget_s - args.finish_s
    while any(len(epochs_done(c)) < args.probe_epochs and c.proc and c.proc.poll() is None for c in runs):
        if time.monotonic() > deadline:
            break
        time.sleep(1.0)
    for c in runs:
        history = epochs_done(c)
        if len(history) >= 2:
            c.epoch_s = (history[-1]["time_s"] - history[0]["time_s"]) / (len(history) - 1)
        stop(c, wait_s=60)
    left = deadline - time.monotonic()
    for c in runs:
        done = len(epochs_done(c))
        if done < 2:
            print(f"{c.name}: no pace measured ({done} epochs); see {c.name}.log", file=sys.stderr)
            continue
        c.epochs = min(args.max_epochs, done + max(0, int(left / c.epoch_s)))
        launch(c, args.pack, common, c.epochs, resume=True)
        print(f"{c.name}: {c.epoch_s:.2f} s an epoch; {done} done, training to epoch {c.epochs}", flush=True)
    for c in runs:
        if c.proc is None:
            continue
        try:
            c.proc.wait(timeout=max(1.0, start + args.budget_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{c.name}: over budget, stopped with a checkpoint", file=sys.stderr)
            stop(c, wait_s=30)
    summary = {}
    for c in runs:
        history = epochs_done(c)
        summary[c.name] = {"flags": c.flags, "epoch_s": c.epoch_s, "epochs_planned": c.epochs,
                           "epochs_done": len(history), "exit": None if c.proc is None else c.proc.returncode,
                           "val_chamfer_x1e3": history[-1]["val_chamfer"] if history else None}
        if args.archive is not None and history:
            args.archive.mkdir(parents=True, exist_ok=True)
            summary[c.name]["files"] = [p.name for p in archive(c, args.archive, args.part_mib << 20)]
    print(json.dumps({"wall_s": round(time.monotonic() - start, 1), "common": common, "runs": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
