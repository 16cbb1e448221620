"""The Shape Explorer in real headless Blender with the real warm backend: how long from a slider change
to the updated mesh in the object, at about 2 562 and 10 k vertices, and how long the main thread is
blocked meanwhile.

A slider change goes through the add-on's own path: the sidebar property's setter (main thread) offers
the request to the coalescer, the sender thread writes it to the backend, the client's reader thread
decodes the reply, and the Explorer's timer writes the vertices into the mesh. Background bpy never
fires timers, so this loop calls the timer function itself every explore.POLL_S seconds, as Blender's
timer would. Two runs per resolution: `steps`, one change at a time, each waited for (latency: change to
mesh, median of --changes); `drag`, a change every 16 ms (a 60 Hz mouse) without waiting, as a fast drag
sends them (how many requests the coalescer sent and replaced, and the latency of those applied).
Run it with `OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_explorer_addon [--model PATH]`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_addon import DEFAULT, chatter_to_stderr, clear_scene, isolate_blender, ms, start_blender

MOUSE_INTERVAL_S = 1 / 60


def pump(explore: Any, until: Any, block: list[float], timeout: float = 30.0) -> None:
    """Call the Explorer's timer every POLL_S seconds until `until()`, recording each call's duration."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise SystemExit("the Explorer got no reply within 30 s")
        time.sleep(explore.POLL_S)
        t = time.perf_counter()
        explore.tick()
        block.append(time.perf_counter() - t)


def one_result(bpy: Any, resolution: int, surface: str = "patches") -> Any:
    """A fresh sampled result at `resolution` (the decoded patches by default), active and alone in the scene."""
    clear_scene(bpy)
    if bpy.ops.atlasvae.sample(count=1, seed=1, resolution=resolution, surface=surface) != {"FINISHED"}:
        raise SystemExit(f"sampling failed: {bpy.context.window_manager.atlasvae_runtime.last_report}")
    obj = next(o for o in bpy.data.objects if "atlasvae_latent" in o)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    return obj


def steps(bpy: Any, explore: Any, changes: int) -> tuple[list[float], list[float], list[float], int]:
    """(latencies, setter durations, timer-call durations, vertices) of `changes` slider changes, each
    waited for."""
    sliders = bpy.context.window_manager.atlasvae_explorer
    sliders.amounts[0] = 0.01  # binds the session and fetches the directions, untimed
    live = explore.session()
    pump(explore, lambda: live.coalescer.idle() and live.replies.empty(), [])
    live.timings.clear()
    setter: list[float] = []
    block: list[float] = []
    count = len(live.table.directions)
    for i in range(changes):
        t = time.perf_counter()
        sliders.amounts[i % count] = ((i % 13) - 6) * 0.4 + 0.05
        setter.append(time.perf_counter() - t)
        pump(explore, live.idle, block)  # this change's reply applied (timings keep the latest TIMINGS_KEPT)
    return [t[0] for t in live.timings], setter, block, live.timings[-1][2]


def drag(bpy: Any, explore: Any, changes: int) -> tuple[list[float], int, int, list[float]]:
    """(latencies of the changes applied, requests sent, requests replaced while one was out, timer-call
    durations) of a drag of `changes` positions 16 ms apart, then the release's final shape."""
    sliders = bpy.context.window_manager.atlasvae_explorer
    live = explore.session()
    live.timings.clear()
    sent0, replaced0 = live.coalescer.sent, live.coalescer.replaced
    block: list[float] = []
    for i in range(changes):
        next_move = time.perf_counter() + MOUSE_INTERVAL_S
        sliders.amounts[1] = -2.0 + 4.0 * i / changes
        while time.perf_counter() < next_move:
            time.sleep(explore.POLL_S)
            t = time.perf_counter()
            explore.tick()
            block.append(time.perf_counter() - t)
    pump(explore, lambda: live.coalescer.idle() and live.replies.empty(), block)
    return ([t[0] for t in live.timings], live.coalescer.sent - sent0, live.coalescer.replaced - replaced0, block)


def release(bpy: Any, explore: Any, resolution: int) -> tuple[float, float, int]:
    """(seconds from the release to the closed surface in the object, the longest timer call meanwhile, its
    faces) for a closed result: a slider change, then the release's final request; the final apply rebuilds
    the mesh, sharpens its edges and records the undo step on the main thread."""
    obj = one_result(bpy, resolution, surface="closed")
    sliders = bpy.context.window_manager.atlasvae_explorer
    sliders.amounts[0] = 1.0
    live = explore.session()
    pump(explore, lambda: live.coalescer.idle() and live.replies.empty(), [])
    block: list[float] = []
    t = time.perf_counter()
    explore.commit()
    pump(explore, lambda: live.coalescer.idle() and live.replies.empty(), block, timeout=120.0)
    return time.perf_counter() - t, max(block), len(bpy.data.objects[obj.name].data.polygons)


def backend_only(bpy: Any, explore: Any, runs: int = 30) -> list[float]:
    """Seconds of the bare `explore` call from the client (no Blender work), for comparison."""
    from blender_addon.bpyfree.backend_process import backend
    from blender_addon.bpyfree.explorer import explore_params

    live = explore.session()
    client, _info = backend.ensure_model(live.config)
    times = []
    for i in range(runs):
        params = explore_params(live.shape, live.table, [0.3 * (i % 5)], "patches", live.face_budget)
        t = time.perf_counter()
        client.call("explore", params)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT, help=f"model folder (default {DEFAULT})")
    parser.add_argument("--changes", type=int, default=100, help="slider changes per resolution")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[2562, 10242])
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="atlasvae-bench-explorer-"))
    lines: list[str] = []
    try:
        isolate_blender(scratch / "blender-user")
        from bench.common import machine

        print(f"machine: {machine()} (shared with other work: treat timings as rough)")
        print(f"model: {args.model.resolve()}", flush=True)
        with chatter_to_stderr():
            b = start_blender(args.model.resolve(), scratch)
            from blender_addon import explore

            try:
                for resolution in args.resolutions:
                    one_result(b.bpy, resolution)
                    latency, setter, block, vertices = steps(b.bpy, explore, args.changes)
                    bare = backend_only(b.bpy, explore)
                    lines.append(f"{vertices} vertices, {len(latency)} changes one at a time: slider change to "
                                 f"mesh median {ms(statistics.median(latency))} ms (p90 "
                                 f"{ms(sorted(latency)[int(0.9 * len(latency))])} ms); bare explore call median "
                                 f"{ms(statistics.median(bare))} ms; main thread: setter max {ms(max(setter))} ms, "
                                 f"timer call max {ms(max(block))} ms")
                    applied, sent, replaced, block = drag(b.bpy, explore, args.changes)
                    lines.append(f"  drag of {args.changes} positions 16 ms apart: {sent} requests sent, {replaced} "
                                 f"replaced while one was out, {len(applied)} applied; change to mesh median "
                                 f"{ms(statistics.median(applied))} ms; timer call max {ms(max(block))} ms")
                    took, longest, faces = release(b.bpy, explore, resolution)
                    lines.append(f"  release on a closed result: the closed surface ({faces} faces) in the object "
                                 f"{ms(took)} ms after the release; longest timer call {ms(longest)} ms (rebuild, "
                                 f"sharp edges, undo step)")
                    print(*lines[-3:], sep="\n", file=sys.stderr, flush=True)
            finally:
                b.jobs.shutdown()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
