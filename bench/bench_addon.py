"""The add-on in real headless Blender: how long Sample Shapes takes from the operator call to objects
in the scene with a warm backend, and how long Blender's main thread stalls in the add-on's timer while
the backend samples big meshes and while it fine-tunes.

Background bpy never fires timers, so the interactive (non-blocking) path is driven the way the
add-on tests do it: the operator queues work on a thread, and this loop sleeps the interval the timer
asks for and then calls the timer function on the main thread, timing each call. Run it with
`.venv/bin/python -m bench.bench_addon [--model PATH]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / "models" / "base"
ADDON = "blender_addon"
TINY_MAKER = REPO / "tests" / "addon" / "make_tiny_model.py"
FINAL_JOB_STATES = ("done", "failed", "cancelled")


def isolate_blender(root: Path) -> None:
    """Point Blender's user folders into `root` (before bpy is imported) so no real config is touched."""
    for var, sub in (("BLENDER_USER_CONFIG", "config"), ("BLENDER_USER_SCRIPTS", "scripts"),
                     ("BLENDER_USER_EXTENSIONS", "extensions"), ("BLENDER_USER_DATAFILES", "datafiles")):
        os.environ[var] = str(root / sub)


def is_model(folder: Path) -> bool:
    """Whether `folder` holds a model (config and weights)."""
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def pick_model(requested: Path, scratch: Path) -> tuple[Path, str]:
    """(model folder, note): the requested model; for the default one only, the tiny test model when
    it has not been trained yet. A missing --model is an error naming it."""
    if is_model(requested):
        return requested.resolve(), ""
    if requested.resolve() != DEFAULT.resolve():
        raise SystemExit(f"--model {requested}: not a model folder (needs config.json and model.safetensors)")
    folder = scratch / "tiny"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(TINY_MAKER), str(folder), "tiny"], capture_output=True, text=True,
                          env=env, cwd=str(REPO))
    if proc.returncode != 0:
        raise SystemExit(f"{DEFAULT} does not exist and building the tiny test model failed:\n{proc.stderr}")
    return folder.resolve(), (f"NOTE: {DEFAULT} not found; using the tiny test model (a 6-d identity sphere, "
                              "not a trained model) instead")


@dataclass
class Timed:
    """Wall times (seconds) of calls to one function, recorded by `wrap`."""

    calls: list[float] = field(default_factory=list)

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.calls.append(time.perf_counter() - t)
        return timed


@dataclass
class TimerLog:
    """Per timer call: its duration on the main thread and how late it woke past the interval it
    asked for (the GIL held by another thread, or a busy machine); for the longest call, the meshes it created and its
    undo push."""

    durations: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    longest_meshes: list[float] = field(default_factory=list)
    longest_undo: list[float] = field(default_factory=list)

    def longest(self) -> float:
        return max(self.durations, default=0.0)


def drive_timer(jobs: Any, done: Callable[[], bool], log: TimerLog, meshes: Timed, undo: Timed) -> None:
    """Call jobs.tick as Blender's timer loop would: sleep the interval it returns, call it on this
    (main) thread, repeat until `done()`."""
    interval = jobs.TICK_S
    while True:
        asleep = time.perf_counter()
        time.sleep(interval)
        mesh_mark, undo_mark = len(meshes.calls), len(undo.calls)
        start = time.perf_counter()
        log.lateness.append(start - asleep - interval)
        result = jobs.tick()
        took = time.perf_counter() - start
        if took > log.longest():
            log.longest_meshes, log.longest_undo = meshes.calls[mesh_mark:], undo.calls[undo_mark:]
        log.durations.append(took)
        if done():
            return
        interval = result if result is not None else jobs.TICK_S


def clear_scene(bpy: Any) -> None:
    """Remove every object, collection and mesh, so runs do not slow down as the file grows."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for collection in list(bpy.data.collections):
        bpy.data.collections.remove(collection)
    for mesh in list(bpy.data.meshes):
        bpy.data.meshes.remove(mesh)


def ms(seconds: float) -> str:
    """Seconds as whole milliseconds."""
    return f"{seconds * 1000:.0f}"


@dataclass
class Blender:
    """The enabled add-on and the modules the benchmark drives."""

    bpy: Any
    jobs: Any
    operators: Any
    mesh_convert: Any
    settings: Any
    runtime: Any


def start_blender(model: Path, scratch: Path) -> Blender:
    """Import bpy, enable the add-on like Blender does, choose `model`, start the backend (warm)."""
    os.environ["ATLASVAE_PYTHON"] = sys.executable
    os.environ["ATLASVAE_MODELS_DIR"] = str(model)  # the folder itself is listed as a model
    os.environ["ATLASVAE_CACHE"] = str(scratch / "point-cache")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import bpy  # first: it puts Blender's own modules (addon_utils) on the path

    import addon_utils

    if addon_utils.enable(ADDON, default_set=True) is None:
        raise SystemExit("enabling the add-on failed (see the traceback above)")
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.user_dir, prefs.device = str(scratch / "user"), "cpu"
    from blender_addon import jobs, mesh_convert, operators, properties

    properties.refresh_models()
    settings = bpy.context.scene.atlasvae
    settings.use_model(model)
    settings.random_seed = False
    clear_scene(bpy)
    if bpy.ops.atlasvae.backend_start() != {"FINISHED"}:
        raise SystemExit(f"the backend did not start: {bpy.context.window_manager.atlasvae_runtime.last_report}")
    return Blender(bpy, jobs, operators, mesh_convert, settings, bpy.context.window_manager.atlasvae_runtime)


def sample_latency(b: Blender, runs: int, through_timer: bool = False) -> list[float]:
    """Seconds from bpy.ops.atlasvae.sample() (8 shapes, default resolution) until its objects are in
    the scene: blocking as in background Blender, or through the worker thread and the timer ticking at
    its own interval as in interactive Blender. The scene is emptied between runs, untimed."""
    b.settings.count, b.settings.seed = 8, 0
    b.settings.resolution_preset = type(b.settings).bl_rna.properties["resolution_preset"].default
    times = []
    for i in range(runs + 1):
        clear_scene(b.bpy)
        t = time.perf_counter()
        if through_timer:
            with interactive(b):
                result = b.bpy.ops.atlasvae.sample()
                drive_timer(b.jobs, lambda: not b.jobs.pending_kinds(), TimerLog(), Timed(), Timed())
        else:
            result = b.bpy.ops.atlasvae.sample()
        took = time.perf_counter() - t
        made = [o for o in b.bpy.context.scene.collection.all_objects if "atlasvae_model" in o]
        if result != {"FINISHED"} or len(made) != 8:
            raise SystemExit(f"sampling failed: {result}, {len(made)} objects, {b.runtime.last_report}")
        if i:  # the first run is the warm-up
            times.append(took)
    clear_scene(b.bpy)
    return times


@dataclass
class StallReport:
    """What one interactive action cost the main thread."""

    operator_s: float
    timer: TimerLog
    total_s: float


@contextmanager
def interactive(b: Blender) -> Iterator[None]:
    """Make the add-on take its interactive path (worker thread + timer) inside the `with` body."""
    original = b.jobs.blocking_default
    b.jobs.blocking_default = lambda: False
    try:
        yield
    finally:
        b.jobs.blocking_default = original
        if b.bpy.app.timers.is_registered(b.jobs.tick):
            b.bpy.app.timers.unregister(b.jobs.tick)


def stall_while(b: Blender, start: Callable[[], set[str]], done: Callable[[], bool],
                meshes: Timed, undo: Timed) -> StallReport:
    """Run an operator on the interactive path and drive the timer until `done()`."""
    log = TimerLog()
    with interactive(b):
        t0 = time.perf_counter()
        result = start()
        operator_s = time.perf_counter() - t0
        if result != {"FINISHED"}:
            raise SystemExit(f"operator failed: {result}, {b.runtime.last_report}")
        drive_timer(b.jobs, done, log, meshes, undo)
        total_s = time.perf_counter() - t0
    return StallReport(operator_s, log, total_s)


def report_stall(what: str, r: StallReport) -> str:
    """Result lines for one interactive action."""
    late = max(r.timer.lateness, default=0.0)
    text = (f"  {what}: {len(r.timer.durations)} timer calls over {r.total_s:.1f} s; operator call "
            f"{ms(r.operator_s)} ms; longest timer call {ms(r.timer.longest())} ms (median "
            f"{statistics.median(r.timer.durations) * 1000:.2f} ms); latest wake-up {ms(late)} ms past its interval")
    mesh, undo = r.timer.longest_meshes, r.timer.longest_undo
    if mesh:
        text += (f"\n    in the longest call: creating {len(mesh)} meshes {ms(sum(mesh))} ms "
                 f"({sum(mesh) / len(mesh) * 1000:.1f} ms each), undo push {ms(sum(undo))} ms, "
                 f"rest {ms(r.timer.longest() - sum(mesh) - sum(undo))} ms")
    return text


@contextmanager
def chatter_to_stderr() -> Iterator[None]:
    """Send what Blender and the add-on print (reports, backend notes) to stderr, so stdout carries
    only the results."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextmanager
def patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Replace `owner.name` by `value` inside the `with` body."""
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT, help=f"model folder (default {DEFAULT})")
    parser.add_argument("--runs", type=int, default=7, help="timed sampling runs after one warm-up")
    parser.add_argument("--sample-count", type=int, default=16, help="shapes sampled while measuring stalls")
    parser.add_argument("--sample-resolution", type=int, default=10242)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--finetune-per-family", type=int, default=24,
                        help="procedural sword and mug meshes each in the fine-tune folder")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="atlasvae-bench-addon-"))
    lines: list[str] = []
    try:
        isolate_blender(scratch / "blender-user")
        model, note = pick_model(args.model, scratch)
        from bench.common import machine

        print(f"machine: {machine()} (shared with other work: treat timings as rough)")
        if note:
            print(note)
        print(f"model: {model}", flush=True)
        with chatter_to_stderr():
            b = start_blender(model, scratch)
            try:
                run(b, args, scratch, lines.append)
            finally:
                b.jobs.shutdown()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        print("\n".join(lines))


def run(b: Blender, args: argparse.Namespace, scratch: Path, out: Callable[[str], None]) -> None:
    """Measure everything and hand each result line to `out` as soon as it is known."""
    times = sample_latency(b, args.runs)
    out(f"sample 8 shapes, warm, operator to objects: median {ms(statistics.median(times))} ms "
        f"(runs {', '.join(ms(t) for t in times)} ms; {b.settings.resolution()} vertices, blocking path)")
    times = sample_latency(b, args.runs, through_timer=True)
    out(f"  same through the worker thread and the timer ({b.jobs.TICK_S * 1000:.0f} ms ticks, as in "
        f"interactive Blender): median {ms(statistics.median(times))} ms (runs {', '.join(ms(t) for t in times)} ms)")

    meshes, undo, events = Timed(), Timed(), Timed()
    with patched(b.operators.building, "arrays_to_mesh", meshes.wrap(b.operators.building.arrays_to_mesh)), \
            patched(b.jobs, "undo_push", undo.wrap(b.jobs.undo_push)):
        clear_scene(b.bpy)
        b.settings.count, b.settings.seed = args.sample_count, 1
        b.settings.resolution_preset, b.settings.custom_resolution = "CUSTOM", args.sample_resolution
        sampling = stall_while(b, b.bpy.ops.atlasvae.sample, lambda: not b.jobs.pending_kinds(), meshes, undo)
        made = [o for o in b.bpy.data.objects if "atlasvae_model" in o]
        if len(made) != args.sample_count:
            raise SystemExit(f"interactive sampling made {len(made)} objects: {b.runtime.last_report}")
        vertices, faces = b.mesh_convert.object_triangles(made[0], b.bpy.context.evaluated_depsgraph_get())
        clear_scene(b.bpy)

        from backend.data.procedural import write_dataset

        folder = scratch / "finetune-data"
        files = write_dataset(folder, ["sword", "mug"], args.finetune_per_family, seed=3)
        b.settings.finetune_data, b.settings.finetune_epochs = str(folder), args.finetune_epochs
        b.settings.finetune_name = "bench-finetune"
        b.jobs.set_handlers(events.wrap(b.operators.finetune.on_notification), b.operators.finetune.job_watch)
        try:
            finetune = stall_while(b, b.bpy.ops.atlasvae.finetune_start,
                                   lambda: b.runtime.job_state in FINAL_JOB_STATES, meshes, undo)
        finally:
            b.jobs.set_handlers(b.operators.finetune.on_notification, b.operators.finetune.job_watch)
        if b.runtime.job_state != "done":
            raise SystemExit(f"fine-tune ended {b.runtime.job_state}: {b.runtime.job_message}")

    out(f"longest main-thread stall while sampling: {ms(sampling.timer.longest())} ms; "
        f"while fine-tuning: {ms(finetune.timer.longest())} ms")
    out(report_stall(f"sampling {args.sample_count} shapes x {args.sample_resolution} vertices", sampling))
    out(report_stall(f"fine-tuning {args.finetune_epochs} epochs on {len(files)} procedural meshes "
                     f"({len(events.calls)} notifications handled)", finetune))
    mesh_only = time_mesh_creation(b, vertices, faces, args.sample_count)
    out(f"creating {args.sample_count} meshes of {len(vertices)} vertices alone (arrays_to_mesh, no timer, no "
        f"backend): median {ms(statistics.median(mesh_only))} ms ({', '.join(ms(t) for t in mesh_only)} ms)")


def time_mesh_creation(b: Blender, vertices: Any, faces: Any, count: int, runs: int = 5) -> list[float]:
    """Seconds to build `count` Blender meshes from arrays of a sampled shape, without the backend or
    the timer: the floor of the sampling stall."""
    build = b.mesh_convert.arrays_to_mesh
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for i in range(count):
            build(f"bench{i}", vertices, faces)
        times.append(time.perf_counter() - t)
        clear_scene(b.bpy)
    return times


if __name__ == "__main__":
    main()
