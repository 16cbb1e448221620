"""Follow one Sample Shapes click: which of our files it passes, in the add-on and in the backend, and how often
it moves between them. Measures the real code: headless Blender (the bpy module) runs atlasvae.sample with
the bundled model; a profile hook in both processes records every call into a function of ours.

Run: .venv/bin/python scripts/follow_request.py [--count 4] [--resolution 642]
A first click starts the backend and loads the model; the second, traced click is the one reported (a warm
click, as an artist makes most of them). Counts: files (distinct files with a call, or calling), hops (calls whose caller
is in another file of ours, each distinct caller -> callee file pair once, plus the two pipe crossings).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
IGNORED_THREAD = "atlasvae-parent-watch"
TRACER = '''
import os, sys, threading, time
_REPO, _OUT = os.environ["ATLASVAE_TRACE_REPO"], os.environ["ATLASVAE_TRACE_OUT"]
_ROOTS = tuple(os.path.join(_REPO, d) + os.sep for d in ("backend", "blender_addon"))
_out = open(_OUT, "a", buffering=1, encoding="utf-8")

def _hook(frame, event, arg):
    if event != "call":
        return
    name = frame.f_code.co_filename
    if not name.startswith(_ROOTS):
        return
    back = frame.f_back
    caller = back.f_code.co_filename if back is not None else ""
    caller = caller[len(_REPO) + 1:] if caller.startswith(_ROOTS) else ""
    _out.write(f"{time.time():.6f}\\t{threading.current_thread().name}\\t{caller}\\t{name[len(_REPO) + 1:]}\\t{frame.f_code.co_name}\\n")

sys.setprofile(_hook)
threading.setprofile(_hook)
'''


def _events(path: Path, start: float, end: float) -> list[tuple[float, str, str, str, str]]:
    """The calls made during the traced click, less the backend's parent watch (a thread polling beside it)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        t, thread, caller, callee, func = line.split("\t")
        if start <= float(t) <= end and thread != IGNORED_THREAD:
            rows.append((float(t), thread, caller, callee, func))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=642)
    parser.add_argument("--json", action="store_true", help="print the files and hops as JSON")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="atlasvae-follow-"))
    for var, sub in (("BLENDER_USER_CONFIG", "config"), ("BLENDER_USER_SCRIPTS", "scripts"),
                     ("BLENDER_USER_EXTENSIONS", "extensions"), ("BLENDER_USER_DATAFILES", "datafiles")):
        os.environ[var] = str(work / sub)
    site = work / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(TRACER, encoding="utf-8")
    backend_trace, addon_trace = work / "backend.tsv", work / "addon.tsv"
    wrapper = work / "python"  # the backend's interpreter, with the tracer on its path
    wrapper.write_text(f'#!/bin/sh\nATLASVAE_TRACE_OUT={backend_trace} PYTHONPATH="{site}:$PYTHONPATH" '
                       f'exec {REPO / ".venv" / "bin" / "python"} "$@"\n', encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    os.environ.update({"ATLASVAE_PYTHON": str(wrapper), "ATLASVAE_TRACE_REPO": str(REPO),
                       "ATLASVAE_CACHE": str(work / "cache")})
    sys.path.insert(0, str(REPO))
    import importlib

    bpy: Any = importlib.import_module("bpy")  # first: it puts addon_utils on the path (typed Any: a script)
    import addon_utils

    addon_utils.enable("blender_addon", default_set=True)
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.user_dir, prefs.device = str(work / "user"), "cpu"
    settings = bpy.context.scene.atlasvae
    settings.model = "bundled/base"
    settings.random_seed = False
    assert bpy.ops.atlasvae.sample(count=args.count, resolution=args.resolution, seed=1) == {"FINISHED"}
    os.environ["ATLASVAE_TRACE_OUT"] = str(addon_trace)
    exec(compile(TRACER, "tracer", "exec"), {})  # the add-on's process from here on
    start = time.time()
    result = bpy.ops.atlasvae.sample(count=args.count, resolution=args.resolution, seed=2)
    end = time.time()
    sys.setprofile(None)
    threading.setprofile(None)  # type: ignore[arg-type,unused-ignore]
    assert result == {"FINISHED"}, result
    from blender_addon.bpyfree.backend_process import backend

    backend.stop()
    report: dict[str, dict[str, list[str]]] = {}
    for side, path in (("add-on", addon_trace), ("backend", backend_trace)):
        rows = _events(path, start, end)
        order = list(dict.fromkeys(name for _t, _p, caller, callee, _f in rows for name in (caller, callee) if name))
        pairs = Counter((caller, callee) for _t, _p, caller, callee, _f in rows if caller and caller != callee)
        report[side] = {"files": sorted(order), "order": order, "hops": sorted(f"{a} -> {b}" for a, b in pairs)}
    files = sum(len(r["files"]) for r in report.values())
    hops = sum(len(r["hops"]) for r in report.values()) + 2
    if args.json:
        print(json.dumps(report, indent=2))
    for side, r in report.items():
        print(f"{side}: {len(r['files'])} files, {len(r['hops'])} hops")
        for name in r["files"]:
            print(f"  {name}")
    print(f"total: {files} files, {hops} hops (cross-file caller -> callee pairs, plus the pipe out and back)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
