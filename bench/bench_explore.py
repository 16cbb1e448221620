"""Shape Explorer latency: `explore` through the real protocol (the add-on's BackendClient, a warm backend),
surface "patches", at about 2 562 and 10 242 vertices, each request a new slider amount as a drag sends them.

Reported per resolution (medians of --repeats requests): the whole round trip as the add-on's client sees it
(request out, reply parsed, vertices decoded to numpy), the same request in process (ModelService.explore:
the move, the decoder and the placing), and the decoder alone; the difference between the first two is the
protocol's share. Also the closed surface an explore answers when a drag ends (surface "closed", default face
budget). The add-on's end-to-end target is 30 ms at 2 562 vertices (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from backend.checkpoints import load_model
from backend.serving.protocol import encode_latent
from backend.serving.service import ModelService
from backend.templates import template_mesh
from bench.common import machine
from blender_addon.bpyfree.client import BackendClient
from blender_addon.bpyfree.wire import decode_mesh

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / "models" / "base"


def interleaved(fns: list[Callable[[int], object]], repeats: int, warmup: int = 5) -> list[tuple[float, float]]:
    """Median and 90th percentile in milliseconds of each of `fns` over `repeats` calls `fn(i)`, taken in turn
    (one of each per round) so that a busy machine's load falls on all of them alike; `warmup` rounds first."""
    for i in range(warmup):
        for fn in fns:
            fn(i)
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats):
        for fn, out in zip(fns, times):
            t = time.perf_counter()
            fn(i)
            out.append((time.perf_counter() - t) * 1e3)
    return [(statistics.median(t), sorted(t)[int(0.9 * (len(t) - 1))]) for t in times]


def amount(i: int) -> float:
    """A drag: the slider sweeps back and forth within +-2.5 sigma, a new value each request."""
    return 2.5 * math.sin(0.37 * i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[2562, 10242])
    parser.add_argument("--closed-repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {machine()}")

    service = ModelService("cpu")
    service.load(args.model)
    _label, directions, _families = service.direction_set(None)
    start = directions.mean
    latent = encode_latent(start)
    lm = load_model(args.model)

    with BackendClient(sys.executable, REPO, args=["--model", str(args.model), "--device", "cpu"]) as client:
        client.call("directions", {}, timeout=300)  # read (or computed) once; a warm backend has them
        for resolution in args.resolutions:
            params: dict[str, Any] = {"latent": latent, "surface": "patches", "resolution": resolution}

            def remote(i: int) -> None:
                reply = client.call("explore", {**params, "moves": [{"direction": i % 3, "amount": amount(i)}]},
                                    timeout=60)
                decode_mesh(reply["mesh"])

            def local(i: int) -> None:
                service.explore(start, [(i % 3, amount(i))], surface="patches", resolution=resolution)

            pts, _faces = template_mesh(lm.config.template, lm.config.patches, resolution)
            template = torch.from_numpy(pts)
            code = torch.as_tensor(start[None], dtype=torch.float32)

            def decoder(i: int) -> None:
                with torch.inference_mode():
                    lm.model.decode(code, template)

            vertices = len(pts.reshape(-1, pts.shape[-1]))
            (wire, wire90), (inproc, inproc90), (net, net90) = interleaved([remote, local, decoder], args.repeats)
            print(f"explore, patches, {vertices} vertices: round trip {wire:.1f} ms (p90 {wire90:.1f}), in process "
                  f"{inproc:.1f} ms (p90 {inproc90:.1f}), decoder alone {net:.1f} ms (p90 {net90:.1f}); protocol "
                  f"share {wire - inproc:.1f} ms (medians of {args.repeats})")
        if args.closed_repeats:
            params = {"latent": latent, "surface": "closed", "resolution": args.resolutions[0]}
            ((closed, closed90),) = interleaved([lambda i: client.call("explore", {**params, "moves": [
                {"direction": 0, "amount": amount(i)}]}, timeout=120)], args.closed_repeats, warmup=1)
            print(f"explore, closed surface (on release), {args.resolutions[0]} template vertices: round trip "
                  f"{closed:.1f} ms (p90 {closed90:.1f}, medians of {args.closed_repeats})")


if __name__ == "__main__":
    main()
