"""Request-time fitting on real meshes: Chamfer of encoder / latent / full fits vs a fitted ellipsoid.

    python -m bench.bench_fit --meshes /work/data/fitset --out out/bench_fit.json --sheet docs/fit_sheet.png

--meshes is a folder of mesh files or a text file listing them (one path a line); bench/prepare_fit_meshes.py
writes the documented set. Every Chamfer (x1e-3, squared, 2 500 vs 2 500 points) is the one
`reconstruct` reports: the output against the input's own surface samples in the input's unit ball. The
ellipsoid is a least-squares quadric fitted to the same samples (principal axes of the samples when the
quadric is not an ellipsoid), a scale for "how hard is this shape". Schedule options override
backend.fit.FitSchedule's defaults, which is how the defaults were chosen.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.data.meshio import Mesh, Normalisation, load_mesh, normalisation_of
from backend.data.sampling import sample_surface
from backend.fit import FitCancelled, FitSchedule
from backend.limits import DEFAULT_FIT_STEPS, MAX_FIT_STEPS
from backend.metrics import chamfer
from backend.serving.service import ENCODE_POINTS, ModelService
from bench.common import machine
from bench.ellipsoid import best_ellipsoid

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "base"
MODES = ("encoder", "latent", "full")


def mesh_files(source: Path) -> list[Path]:
    """The meshes named by a folder (sorted) or a list file (one path a line, relative to the file)."""
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.suffix.lower() in {".obj", ".ply", ".stl", ".off", ".glb"})
    lines = [line.strip() for line in source.read_text().splitlines() if line.strip()]
    return [(source.parent / line) if not Path(line).is_absolute() else Path(line) for line in lines]


def unit_cloud(mesh: Mesh) -> tuple[Normalisation, np.ndarray]:
    """The mesh's unit-ball normalisation and the 2 500 surface samples the service scores against."""
    norm = normalisation_of(mesh.vertices)
    return norm, sample_surface(Mesh(norm.apply(mesh.vertices), mesh.faces), ENCODE_POINTS, np.random.default_rng(0))


def mesh_chamfer(out: Mesh, norm: Normalisation, cloud: np.ndarray) -> float:
    """Chamfer x1e-3 of the output *mesh* (its faces' surface, not the decoder's points) against the input."""
    unit = Mesh(norm.apply(out.vertices), out.faces)
    return chamfer(sample_surface(unit, ENCODE_POINTS, np.random.default_rng(2)), cloud) * 1e3


def schedule_from(args: argparse.Namespace) -> FitSchedule:
    """FitSchedule defaults with the options given on the command line."""
    overrides = {f.name: getattr(args, f.name) for f in fields(FitSchedule) if getattr(args, f.name, None) is not None}
    return FitSchedule(**overrides)


def run_mode(service: ModelService, mesh: Mesh, mode: str, steps: int | None, schedule: FitSchedule,
             resolution: int) -> dict[str, Any]:
    """Reconstruct once; Chamfer, seconds, steps actually run and seconds per step."""
    events: list[dict[str, Any]] = []
    start = time.perf_counter()
    out, cd = service.reconstruct(mesh, resolution=resolution, fit=mode, steps=steps,
                                  progress=events.append, schedule=schedule, surface="patches")
    seconds = time.perf_counter() - start
    ran = len(events)
    return {"chamfer": cd, "seconds": seconds, "steps_run": ran, "s_per_step": seconds / ran if ran else None,
            "mesh": out}


def cancel_latency(service: ModelService, mesh: Mesh, schedule: FitSchedule, after_s: float = 3.0
                   ) -> dict[str, float | None]:
    """Cancel a running full fit from another thread: seconds until it stopped, and the median step time."""
    cancel, stamps, outcome = threading.Event(), [], {}

    def work() -> None:
        try:
            service.reconstruct(mesh, resolution=642, fit="full", steps=MAX_FIT_STEPS,
                                progress=lambda e: stamps.append(time.perf_counter()), cancel=cancel,
                                schedule=schedule)
        except FitCancelled:
            outcome["stopped"] = time.perf_counter()

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(after_s)
    asked = time.perf_counter()
    cancel.set()
    thread.join()
    return {"latency_s": outcome["stopped"] - asked, "step_s": float(np.median(np.diff(stamps))) if len(stamps) > 1 else None,
            "steps_before_cancel": sum(t <= asked for t in stamps), "steps_after_cancel": sum(t > asked for t in stamps)}


def closed_in_frame(mesh: Mesh) -> Mesh:
    """The backend's closed surface of a result (made in its unit ball, as the service does), in its frame."""
    from backend.surface import closed_surface

    norm = normalisation_of(mesh.vertices)
    closed = closed_surface(norm.apply(mesh.vertices), mesh.faces)
    return Mesh(norm.invert(closed.vertices), closed.faces)


def render_sheet(rows: list[tuple[str, list[Mesh]]], scores: list[list[float]], path: Path, up: str = "z") -> None:
    """A grid: one row per mesh, columns input | encoder | latent | full (titled with their Chamfer x1e-3) |
    the full fit's closed surface, one view from the front (`up`: the meshes' up axis), every panel framed
    like the input."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    titles = ["input", "encoder", "latent", "full", "full, closed"]
    fig = plt.figure(figsize=(3.0 * len(titles), 3.0 * len(rows)))
    light = np.array([0.4, 0.8, 0.45]) / np.linalg.norm([0.4, 0.8, 0.45])
    for r, (name, meshes) in enumerate(rows):
        norm = normalisation_of(meshes[0].vertices)

        def plotted(mesh: Mesh) -> np.ndarray:
            unit = norm.apply(mesh.vertices)
            return unit if up == "z" else unit[:, [0, 2, 1]] * np.array([1, -1, 1])  # y-up mesh -> z-up plot

        lo, hi = plotted(meshes[0]).min(0), plotted(meshes[0]).max(0)
        mid, half = (lo + hi) / 2, (hi - lo).max() / 2 * 1.05  # every column framed like the input
        for c, mesh in enumerate(meshes):
            ax = fig.add_subplot(len(rows), len(titles), r * len(titles) + c + 1, projection="3d")
            v = plotted(mesh)
            tri = v[mesh.faces]
            normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            normal /= np.linalg.norm(normal, axis=1, keepdims=True).clip(1e-12)
            shade = 0.35 + 0.65 * np.abs(normal @ light)
            ax.add_collection3d(Poly3DCollection(tri, facecolors=np.outer(shade, [0.55, 0.7, 0.9]),
                                                 edgecolors="none"))
            ax.set_xlim(mid[0] - half, mid[0] + half), ax.set_ylim(mid[1] - half, mid[1] + half)
            ax.set_zlim(mid[2] - half, mid[2] + half)
            ax.set_box_aspect((1, 1, 1), zoom=1.35)
            ax.view_init(elev=15, azim=-60)
            ax.set_axis_off()
            score = f" {scores[r][c - 1]:.1f}" if 0 < c <= len(scores[r]) else ""
            ax.set_title(f"{name}: {titles[c]}" if c == 0 else f"{titles[c]}{score}", fontsize=10)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.97, wspace=0, hspace=0.08)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run every mesh through each mode; print the table, write JSON and optionally the render sheet."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", type=Path, required=True, help="folder of meshes or a list file")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of encoder,latent,full")
    parser.add_argument("--latent-steps", type=int, default=DEFAULT_FIT_STEPS["latent"])
    parser.add_argument("--full-steps", type=int, default=DEFAULT_FIT_STEPS["full"])
    parser.add_argument("--resolution", type=int, default=2562)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N meshes")
    parser.add_argument("--out", type=Path, help="write the per-mesh results here as JSON")
    parser.add_argument("--sheet", type=Path, help="write input | encoder | latent | full renders here")
    parser.add_argument("--sheet-meshes", default="", help="comma-separated mesh names for the sheet")
    parser.add_argument("--up", choices=("z", "y"), default="z",
                        help="the meshes' up axis, for the sheet's front view (z: the corpus; y: the old fit set)")
    parser.add_argument("--cancel-check", action="store_true",
                        help="also cancel a full fit on the first mesh after 3 s and time how long it took to stop")
    for f in fields(FitSchedule):
        if f.name != "steps":
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(f.default) if
                                not isinstance(f.default, float) else float, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    schedule = schedule_from(args)
    modes = [m for m in args.modes.split(",") if m]
    service = ModelService(args.device)
    service.load(args.model)
    files = mesh_files(args.meshes)[: args.limit or None]
    steps = {"encoder": None, "latent": args.latent_steps, "full": args.full_steps}
    print(f"machine: {machine()}\nmodel: {args.model}\nschedule: {schedule}\nsteps: {steps}", flush=True)
    header = "mesh".ljust(14) + "".join(f"{m:>9}" for m in modes) + "  ellips  " + \
        "".join(f"{m[:3]}/ell " for m in modes) + "  " + "".join(f"{m[:3]} s  " for m in modes) + " full s/step"
    print(header, flush=True)
    rows: list[dict[str, Any]] = []
    sheet_rows: list[tuple[str, list[Mesh]]] = []
    sheet_scores: list[list[float]] = []
    wanted = {n for n in args.sheet_meshes.split(",") if n}
    for path in files:
        mesh = load_mesh(path)
        norm, cloud = unit_cloud(mesh)
        fitted, ell, ell_sq = best_ellipsoid(cloud, np.random.default_rng(1))
        ell_cd, kind = ell_sq * 1e3, "quadric" if fitted.algebraic else "moment"
        res = {m: run_mode(service, mesh, m, steps[m], schedule, args.resolution) for m in modes}
        for r in res.values():
            r["mesh_chamfer"] = mesh_chamfer(r["mesh"], norm, cloud)
        row = {"mesh": path.name, "path": str(path), "faces": int(len(mesh.faces)), "ellipsoid": ell_cd,
               "ellipsoid_fit": kind, **{m: {k: v for k, v in r.items() if k != "mesh"} for m, r in res.items()}}
        rows.append(row)
        if path.stem in wanted and all(m in res for m in MODES):
            sheet_rows.append((path.stem, [mesh, *(res[m]["mesh"] for m in MODES), closed_in_frame(res["full"]["mesh"])]))
            sheet_scores.append([res[m]["chamfer"] for m in MODES])
        full_sps = res["full"]["s_per_step"] if "full" in res else None
        print(path.stem[:13].ljust(14) + "".join(f"{res[m]['chamfer']:9.2f}" for m in modes) + f"{ell_cd:8.2f}  " +
              "".join(f"{res[m]['chamfer'] / ell_cd:7.3f} " for m in modes) + "  " +
              "".join(f"{res[m]['seconds']:6.1f} " for m in modes) +
              (f"  {full_sps * 1000:6.1f} ms" if full_sps else ""), flush=True)
    summary: dict[str, Any] = {m: {"median_chamfer": statistics.median(r[m]["chamfer"] for r in rows),
                   "median_ratio": statistics.median(r[m]["chamfer"] / r["ellipsoid"] for r in rows),
                   "median_mesh_ratio": statistics.median(r[m]["mesh_chamfer"] / r["ellipsoid"] for r in rows),
                   "median_seconds": statistics.median(r[m]["seconds"] for r in rows),
                   "median_steps_run": statistics.median(r[m]["steps_run"] for r in rows)} for m in modes}
    summary["ellipsoid"] = {"median_chamfer": statistics.median(r["ellipsoid"] for r in rows)}
    print("median", json.dumps(summary, indent=1))
    if args.cancel_check:
        summary["cancel"] = cancel_latency(service, load_mesh(files[0]), schedule)
        print("cancel", json.dumps(summary["cancel"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine(), "argv": sys.argv, "schedule": str(schedule),
                                        "steps": steps, "rows": rows, "summary": summary}, indent=1))
    if args.sheet and sheet_rows:
        render_sheet(sheet_rows, sheet_scores, args.sheet, args.up)
    return 0


if __name__ == "__main__":
    sys.exit(main())
