"""Backend process figures: cold start to handshake, protocol overhead of a 10 000-vertex round trip,
and resident memory with the model loaded and after `release`."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

from backend.data.meshio import Mesh
from backend.serving.service import ModelService
from bench.common import machine, median_time
from blender_addon.bpyfree.client import BackendClient
from blender_addon.bpyfree.wire import encode_mesh

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / "models" / "base"


def client_for(model: Path) -> BackendClient:
    return BackendClient(sys.executable, REPO, args=["--model", str(model), "--device", "cpu"])


def cold_start(model: Path, runs: int) -> list[float]:
    """Seconds from spawning the process to an answered handshake with the model loaded."""
    times = []
    for _ in range(runs):
        client = client_for(model)
        t = time.perf_counter()
        hello = client.start(timeout=120)
        times.append(time.perf_counter() - t)
        assert hello["model"] is not None, hello
        client.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")

    starts = cold_start(args.model, args.runs)
    print(f"cold start, spawn -> handshake with model loaded: median {statistics.median(starts):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in starts)})")

    sphere = trimesh.creation.icosphere(subdivisions=5)
    mesh = Mesh(np.asarray(sphere.vertices) * 1.7 + 0.3, np.asarray(sphere.faces))
    service = ModelService("cpu")
    service.load(args.model)
    local, _ = median_time(lambda: service.reconstruct(mesh), repeats=9, warmup=2)
    with client_for(args.model) as client:
        payload = {"mesh": encode_mesh(mesh.vertices, mesh.faces), "resolution": 2562}
        remote, _ = median_time(lambda: client.call("reconstruct", payload, timeout=60), repeats=9, warmup=2)
        released = client.call("release", {}, timeout=60)
    print(f"reconstruct {len(mesh.vertices)} vertices: in-process {local * 1000:.1f} ms, through the server "
          f"{remote * 1000:.1f} ms, protocol overhead {(remote - local) * 1000:.1f} ms (medians of 9)")
    mb = 1024 * 1024
    before, after = released.get("rss_before"), released.get("rss_after")
    if before and after:
        print(f"resident memory with the model loaded (idle): {before / mb:.0f} MiB; after release: "
              f"{after / mb:.0f} MiB (drop {(before - after) / mb:.0f} MiB)")


if __name__ == "__main__":
    main()
