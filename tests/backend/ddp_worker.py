"""Test helper run under torchrun: one rank of `backend.training.loop.run`, reporting what the distributed tests check.

usage: python -m torch.distributed.run --standalone --nproc_per_node=N tests/backend/ddp_worker.py \\
           REPORT_DIR [--cancel-at-step K] [--check-gradients] -- <flags as for `python -m backend train`>

Each rank writes REPORT_DIR/rank<R>.json: a hash of its final weights and batch-norm statistics (every rank
must hold the same), the progress events it received (only rank 0 may get any), its summary, which mesh
files it sampled itself (rank 0 fills the point cache; the others must find every file there), and on
rank 0 the hash of the model folder it wrote. --cancel-at-step K makes rank 0 alone request a cancel at
its K-th step, as a Ctrl-C seen by one process would. --check-gradients first compares one data-parallel
step with one process holding the whole batch, in float64, with the right loss weighting and with a
wrong one. The worker opens the process group itself with a short timeout, so that ranks falling out of
step fail with an error instead of waiting for the default limit.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

import backend.data.datasets as datasets
import backend.training.loop as train
from backend.training import distributed
from backend.checkpoints import load_model
from backend.cli import build_parser
from backend.training.config import config_from_args
from backend.losses import chamfer_per_shape
from backend.model import AtlasVAE, ModelConfig
from backend.templates import random_points


def state_hash(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer, by name."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_gradients(weighting: str = "global") -> dict[str, float]:
    """One step with 5 shapes split 2 + 3 over two ranks against one process holding all 5 (ae mode).

    Runs in float64 so that what is left of a correct step is rounding at the 1e-16 level, far below any
    weighting error (in float32 the same comparison leaves ~1e-3 of the largest gradient on some CPUs:
    batch norm's backward pass cancels large terms, and kernels sum in CPU-dependent orders).
    weighting="local" backpropagates each rank's own mean unscaled, as plain DDP would: the wrong
    gradient for unequal shares, which the test must see. Returns the norm of the gradient difference
    relative to the norm of the whole gradient, the largest relative difference in batch-norm running
    statistics, and the relative difference of the reported batch loss.
    """
    with distributed.join("cpu") as group:
        torch.manual_seed(0)
        model = AtlasVAE(ModelConfig(mode="ae", latent_dim=16, decoder_width=32, decoder_layers=1)).double()
        whole = copy.deepcopy(model)
        x = torch.as_tensor(np.random.default_rng(0).standard_normal((5, 128, 3)), dtype=torch.float64)
        template = random_points("sphere", 1, 128).double()
        mine = x[group.shard(len(x))]
        net = group.wrap(model)  # kept referenced: DDP's reducer must outlive the backward pass
        pred, _, _ = net(mine, template)
        loss = chamfer_per_shape(pred, mine).mean()
        (group.scale_loss(loss, len(mine), len(x)) if weighting == "global" else loss).backward()
        reported = float(group.batch_means(loss, len(mine), len(x)))
        pred, _, _ = whole(x, template)
        expected = chamfer_per_shape(pred, x).mean()
        expected.backward()
        pairs = [(a.grad, b.grad) for a, b in zip(model.parameters(), whole.parameters())
                 if a.grad is not None and b.grad is not None]
        assert len(pairs) == len(list(whole.parameters())), "a parameter got no gradient"
        diff = torch.sqrt(sum((a - b).square().sum() for a, b in pairs))
        norm = torch.sqrt(sum(b.square().sum() for _, b in pairs))
        buffers = [(a, b) for a, b in zip(model.buffers(), whole.buffers()) if a.is_floating_point()]
        buffer_diff = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-300)) for a, b in buffers)
        return {"grad": float(diff / norm), "buffers": buffer_diff,
                "loss": abs(reported - expected.item()) / expected.item()}


def main(report_dir: str, cancel_at: int, gradients: bool, flags: list[str]) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=300))
    rank = dist.get_rank()
    checked = {w: check_gradients(w) for w in ("global", "local")} if gradients else None
    args = build_parser().parse_args(["train", *flags])
    cfg = config_from_args({k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})

    models: list[torch.nn.Module] = []
    build_model = train.build_model

    def keep_model(*a: Any, **kw: Any) -> Any:
        model, meta = build_model(*a, **kw)
        models.append(model)
        return model, meta

    sampled: list[str] = []
    sample_file = datasets._sample_file

    def count_samples(data: bytes, path: Path, *a: Any, **kw: Any) -> Any:
        sampled.append(path.name)
        return sample_file(data, path, *a, **kw)

    train.build_model = keep_model
    datasets._sample_file = count_samples
    events: list[dict[str, Any]] = []
    cancel = threading.Event()

    def progress(event: dict[str, Any]) -> None:
        events.append(event)
        if event["event"] == "step" and sum(e["event"] == "step" for e in events) == cancel_at:
            cancel.set()

    summary = train.run(cfg, progress=progress, cancel=cancel)
    report = {"rank": rank, "hash": state_hash(models[0]), "events": events, "summary": summary,
              "sampled": sampled, "gradients": checked}
    if rank == 0:
        report["saved_hash"] = state_hash(load_model(cfg.out).model)
    Path(report_dir, f"rank{rank}.json").write_text(json.dumps(report, default=str))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("report_dir")
    parser.add_argument("--cancel-at-step", type=int, default=0)
    parser.add_argument("--check-gradients", action="store_true")
    split = sys.argv.index("--")
    opts = parser.parse_args(sys.argv[1:split])
    main(opts.report_dir, opts.cancel_at_step, opts.check_gradients, sys.argv[split + 1:])
