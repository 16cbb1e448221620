"""Every compute path once on one device, timed: sample, the three fits, one training epoch, and the server.

Written for the CUDA and MPS paths, which CI (CPU only) never runs: `python -m bench.bench_device_path
--device cuda` on a GPU machine says what ran and how long it took, as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import trimesh

from backend.data.meshio import Mesh, load_mesh
from backend.serving.service import ModelService
from bench.common import machine
from blender_addon.bpyfree.client import BackendClient
from blender_addon.bpyfree.wire import encode_mesh

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "base"
DEFAULT_MESH = REPO / "scripts" / "demo_assets" / "chair2.obj"


def timed(results: dict[str, Any], name: str, fn: Callable[[], Any]) -> Any:
    """Run fn, record its seconds (or its error) under `name`, and return its value."""
    t = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:  # a report of what failed on this device, never a crash half-way
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return None
    results[name] = {"ok": True, "s": round(time.perf_counter() - t, 3)}
    return value


def service_paths(results: dict[str, Any], device: str, model: Path, mesh: Mesh) -> None:
    """Sample and the three fits, in process on `device`."""
    service = ModelService(device)
    timed(results, "load", lambda: service.load(model))
    timed(results, "sample_8_warm_up", lambda: service.sample(8, 0))
    timed(results, "sample_8", lambda: service.sample(8, 1))
    for fit in ("encoder", "latent", "full"):
        out = timed(results, f"reconstruct_{fit}", lambda: service.reconstruct(mesh, fit=fit))
        if out is not None:
            results[f"reconstruct_{fit}"]["chamfer_x1e3"] = round(float(out[1]), 3)


def training_epoch(results: dict[str, Any], device: str) -> None:
    """One epoch of a small procedural run from scratch on `device`."""
    from backend.training.config import TrainConfig
    from backend.training.loop import run

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig.from_flat({"out": str(Path(tmp) / "run"), "procedural": "sword,mug:16", "epochs": 1,
                                     "batch_size": 8, "points": 512, "sheet_every": 0, "device": device,
                                     "prior_components": 2})
        summary = timed(results, "train_one_epoch", lambda: run(cfg, progress=lambda event: None))
        if summary is not None:
            results["train_one_epoch"]["state"] = summary["state"]


def server_path(results: dict[str, Any], device: str, model: Path, mesh: Mesh) -> None:
    """The stdio server on `device`: handshake with the model loaded, a sample and a reconstruct."""
    client = BackendClient(sys.executable, REPO, args=["--model", str(model), "--device", device])
    hello = timed(results, "server_start", lambda: client.start(timeout=300))
    try:
        if hello is not None:
            results["server_start"]["device_name"] = hello.get("device_name") or hello.get("device")
        payload = {"mesh": encode_mesh(mesh.vertices, mesh.faces), "resolution": 2562}
        timed(results, "server_sample_4", lambda: client.call("sample", {"count": 4}, timeout=300))
        timed(results, "server_reconstruct", lambda: client.call("reconstruct", payload, timeout=300))
    finally:
        client.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--mesh", type=Path, default=DEFAULT_MESH, help="the mesh the fits reconstruct")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine(), "device": args.device,
                               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                               "numpy": np.__version__, "trimesh": trimesh.__version__}
    mesh = load_mesh(args.mesh)
    service_paths(results, args.device, args.model, mesh)
    training_epoch(results, args.device)
    server_path(results, args.device, args.model, mesh)
    results["all_ok"] = all(v.get("ok", True) for v in results.values() if isinstance(v, dict))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
