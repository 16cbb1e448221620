"""Peak memory of `sample` and `reconstruct` (CLI) and of the server's `sample` reply, by count x resolution.

Each point is a fresh process; its peak resident memory (ru_maxrss) is read once it exits. The server is
measured through its own VmHWM just before it is told to shut down. Results feed the cap in
backend/serving/service.py (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import machine

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / "models" / "base"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def cli_peak(args: list[str]) -> int:
    """Peak RSS in bytes of one `python -m backend ...` run (children are waited on one at a time)."""
    script = ("import resource, subprocess, sys\n"
              "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
              "assert done.returncode == 0, done.stderr[-2000:]\n"
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n")
    out = subprocess.run([sys.executable, "-c", script, sys.executable, "-m", "backend", *args], cwd=REPO,
                         env=_env(), capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def server_peak(model: Path, count: int, resolution: int) -> int:
    """Peak RSS (VmHWM) of a server after answering one `sample` request."""
    proc = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--device", "cpu", "--model", str(model)],
                            cwd=REPO, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    request = {"jsonrpc": "2.0", "id": 1, "method": "sample", "params": {"count": count, "resolution": resolution}}
    proc.stdin.write(json.dumps(request).encode() + b"\n")
    proc.stdin.flush()
    reply = json.loads(proc.stdout.readline())
    assert "result" in reply, reply
    with open(f"/proc/{proc.pid}/status", encoding="ascii") as fh:
        peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
    proc.stdin.close()
    proc.wait()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=DEFAULT)
    parser.add_argument("--counts", default="1,4,16")
    parser.add_argument("--resolutions", default="2562,40962,163842")
    parser.add_argument("--what", default="sample,reconstruct,server")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    resolutions = [int(r) for r in args.resolutions.split(",")]
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        mesh = Path(tmp) / "mug.obj"
        subprocess.run([sys.executable, "-c", "import sys; from backend.data.meshio import save_mesh; "
                        "from backend.data.procedural import generate; save_mesh(sys.argv[1], generate('mug', 0))",
                        str(mesh)], cwd=REPO, env=_env(), check=True)
        base = cli_peak(["sample", "--model", str(args.model), "--n", "1", "--resolution", "12", "--device", "cpu",
                         "--out", f"{tmp}/base", "--force"])
        print(f"baseline (sample 1 x 12 vertices): {base / 2**20:.0f} MiB")
        for what in args.what.split(","):
            for resolution in resolutions:
                for count in ([1] if what == "reconstruct" else counts):
                    if what == "sample":
                        peak = cli_peak(["sample", "--model", str(args.model), "--n", str(count), "--resolution",
                                         str(resolution), "--device", "cpu", "--out", f"{tmp}/s", "--force"])
                    elif what == "reconstruct":
                        peak = cli_peak(["reconstruct", str(mesh), "--model", str(args.model), "--resolution",
                                         str(resolution), "--device", "cpu", "--out", f"{tmp}/r.obj", "--force"])
                    else:
                        peak = server_peak(args.model, count, resolution)
                    print(f"{what:11s} count {count:3d} x resolution {resolution:6d}: peak {peak / 2**20:7.0f} MiB, "
                          f"above baseline {(peak - base) / 2**20:7.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
