"""Output-size caps come from measured peak memory, and the CLI and the server enforce the same one.

The cap counts the vertices actually produced (the sphere template snaps the resolution to an icosphere
level), and the peak memory of a run at the cap stays within the formula stated in backend/serving/service.py.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from backend.serving.protocol import INVALID_PARAMS
from backend.serving.service import (DECODE_ACTIVATION_BYTES, MAX_OUTPUT_VERTICES, OUTPUT_BYTES_PER_VERTEX,
                             TEMPLATE_BYTES_PER_VERTEX)
from backend.limits import MAX_FACE_BUDGET
from backend.surface import CLOSING_PEAK_BYTES
from backend.templates import ICOSPHERE_VERTICES
from tests.protocol.harness import RawServer

REPO = Path(__file__).resolve().parents[2]
SAFETY_TIMEOUT_S = 900.0  # only guards against a hung run; never a speed requirement
LEVEL7 = ICOSPHERE_VERTICES[7]  # what resolution 100 000 and 200 000 snap to
ADDRESS_SPACE_GUARD = 12 << 30  # keeps a run that ignores the cap from swamping the machine


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_GUARD, ADDRESS_SPACE_GUARD))


def _sample(model: Path, out: Path, count: int, resolution: int) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `sample` in a child with an address-space guard; the result and the child's peak RSS in bytes."""
    script = ("import resource, subprocess, sys\n"
              "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
              "sys.stderr.write(done.stderr)\n"
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
              "sys.exit(done.returncode)\n")
    args = [sys.executable, "-m", "backend", "sample", "--model", str(model), "--n", str(count), "--resolution",
            str(resolution), "--device", "cpu", "--out", str(out), "--force"]
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=_limit_memory,
                          timeout=SAFETY_TIMEOUT_S)
    return done, int(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else 0


def test_the_cli_refuses_outputs_over_the_cap_before_allocating(tiny_model_dir: Path, tmp_path: Path) -> None:
    count = MAX_OUTPUT_VERTICES // LEVEL7 + 1
    done, _ = _sample(tiny_model_dir, tmp_path / "s", count, 200_000)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"error: {count} meshes x {LEVEL7:,} vertices = {count * LEVEL7:,} output vertices" in done.stderr
    assert f"more than the limit of {MAX_OUTPUT_VERTICES:,}" in done.stderr
    assert not (tmp_path / "s").exists()


def test_peak_memory_at_the_cap_stays_within_the_stated_formula(tiny_model_dir: Path, tmp_path: Path) -> None:
    count = MAX_OUTPUT_VERTICES // LEVEL7
    small, baseline = _sample(tiny_model_dir, tmp_path / "base", 1, 12)
    assert small.returncode == 0, small.stderr[-2000:]
    done, peak = _sample(tiny_model_dir, tmp_path / "s", count, 200_000)
    assert done.returncode == 0, done.stderr[-2000:]
    bound = DECODE_ACTIVATION_BYTES + TEMPLATE_BYTES_PER_VERTEX * LEVEL7 + OUTPUT_BYTES_PER_VERTEX * count * LEVEL7
    assert peak - baseline <= bound, f"{(peak - baseline) / 2**20:.0f} MiB above baseline > {bound / 2**20:.0f} MiB"


def test_the_server_counts_the_vertices_it_would_really_produce(tiny_model_dir: Path) -> None:
    """100 000 snaps up to 163 842 vertices: 40 of them are over the cap though 40 x 100 000 is not."""
    count = MAX_OUTPUT_VERTICES // LEVEL7 + 1
    assert count * 100_000 <= MAX_OUTPUT_VERTICES < count * LEVEL7
    server = RawServer("--model", str(tiny_model_dir))
    try:
        error = server.request("sample", {"count": count, "resolution": 100_000})["error"]
        assert error["code"] == INVALID_PARAMS
        assert f"{count} meshes x {LEVEL7:,} vertices = {count * LEVEL7:,} output vertices" in error["message"]
        ok = server.request("sample", {"count": count - 1, "resolution": 100_000})["result"]
        assert len(ok["meshes"]) == count - 1 and ok["meshes"][0]["vertex_count"] == LEVEL7
    finally:
        assert server.close() == 0


def test_closing_a_shape_at_the_largest_grid_stays_within_its_stated_peak() -> None:
    # the sphere fills the largest grid (192 voxels on every side) with surface: the worst case of the closing
    done = subprocess.run([sys.executable, "-m", "bench.bench_surface", "memory-one", "--template", "sphere",
                           "--face-budget", str(MAX_FACE_BUDGET)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=_limit_memory,
                          timeout=SAFETY_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run["faces"] <= MAX_FACE_BUDGET
    assert run["rise_mib"] * 2**20 <= CLOSING_PEAK_BYTES, f"{run['rise_mib']:.0f} MiB"
