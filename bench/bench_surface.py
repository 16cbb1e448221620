"""Closed surfaces from decoded patches: candidate methods measured on the same shapes (issue 27).

    python -m bench.bench_surface shapes --out out/surface_shapes.npz --per-label 10 \
        --test-split /work/data/corpus/split/base/test --per-category 1
    python -m bench.bench_surface measure --shapes out/surface_shapes.npz --out out/bench_surface.json \
        --methods voxel,pcu,poisson,meshfix
    python -m bench.bench_surface memory --template sphere --face-budget 200000 --repeats 3

`shapes` samples `--per-label` shapes of every label (or `--samples` in all, spread over the labels) of the model (raw patches, unit ball) and full-fits the
first `--per-category` meshes of each test-split category (the raw patches and the real mesh, both in the
real mesh's unit ball), once, into one npz. `measure` closes every shape with each method and reports, per
method and shape set: the share that is watertight and winding-consistent (trimesh), Chamfer x1e-3 (squared,
10 000 vs 10 000 surface points) to the raw patches and to the real mesh, normal consistency (mean |cos|
between each surface point's normal and the nearest point's normal on the other surface, both ways, as in
Occupancy Networks), pieces per shape, faces and median seconds per shape. The raw patches themselves are
the baseline row. Methods other than `voxel` (backend/surface.py) need their packages installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy.spatial import cKDTree

from backend.data.meshio import Mesh, load_mesh, normalisation_of
from backend.limits import DEFAULT_FACE_BUDGET, MAX_FACE_BUDGET
from bench.common import machine

POINTS = 10_000
Method = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def surface_points(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` area-weighted surface points and their faces' unit normals."""
    corners = vertices[faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    double = np.linalg.norm(cross, axis=1)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(faces), n, p=double / double.sum())
    uv = rng.random((n, 2))
    flip = uv.sum(axis=1) > 1
    uv[flip] = 1 - uv[flip]
    c = corners[pick]
    points = c[:, 0] + uv[:, :1] * (c[:, 1] - c[:, 0]) + uv[:, 1:] * (c[:, 2] - c[:, 0])
    return points, cross[pick] / np.maximum(double[pick], 1e-300)[:, None]


def compare(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(Chamfer x1e-3, normal consistency) between two (points, normals) samples."""
    da, ia = cKDTree(b[0]).query(a[0])
    db, ib = cKDTree(a[0]).query(b[0])
    chamfer = (np.mean(da ** 2) + np.mean(db ** 2)) * 1e3
    consistency = (np.mean(np.abs(np.sum(a[1] * b[1][ia], axis=1)))
                   + np.mean(np.abs(np.sum(b[1] * a[1][ib], axis=1)))) / 2
    return float(chamfer), float(consistency)


def pieces(faces: np.ndarray, count: int) -> int:
    """Connected pieces (by shared vertices) of a mesh with `count` vertices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(count, count))
    used = np.zeros(count, bool)
    used[faces.ravel()] = True
    labels = connected_components(graph, directed=False)[1]
    return int(len(np.unique(labels[used])))


# ---- methods: (vertices, faces, face budget) -> closed (vertices, faces) -------------------------------------

def method_raw(v: np.ndarray, f: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    return v, f


def method_voxel(v: np.ndarray, f: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    from backend.surface import closed_surface

    s = closed_surface(v, f, budget)
    return s.vertices, s.faces


def method_pcu(v: np.ndarray, f: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """point-cloud-utils' watertight manifold (Huang et al.'s octree flood fill + projection), then its
    own decimation to the budget."""
    import point_cloud_utils as pcu

    wv, wf = pcu.make_mesh_watertight(v.astype(np.float64), f.astype(np.int32), resolution=20_000)
    if len(wf) > budget:
        wv, wf, _, _ = pcu.decimate_triangle_mesh(wv, wf, budget)
    return np.asarray(wv, np.float64), np.asarray(wf, np.int64)


def method_poisson(v: np.ndarray, f: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """pymeshlab: Poisson-disk samples, normals from their neighbours (oriented by propagation), screened
    Poisson at depth 8, quadric decimation (topology kept) to the budget."""
    import pymeshlab

    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(v.astype(np.float64), f.astype(np.int32)))
    ms.generate_sampling_poisson_disk(samplenum=20_000)
    ms.compute_normal_for_point_clouds(k=10, smoothiter=2)
    ms.generate_surface_reconstruction_screened_poisson(depth=8, preclean=True)
    if ms.current_mesh().face_number() > budget:
        ms.meshing_decimation_quadric_edge_collapse(targetfacenum=budget, preservetopology=True)
    m = ms.current_mesh()
    return m.vertex_matrix().astype(np.float64), m.face_matrix().astype(np.int64)


def method_meshfix(v: np.ndarray, f: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """pymeshfix (MeshFix): keeps the largest component, removes self-intersections, fills holes."""
    import pymeshfix

    fv, ff = pymeshfix.clean_from_arrays(v.astype(np.float64), f.astype(np.int32))
    return np.asarray(fv, np.float64), np.asarray(ff, np.int64)


METHODS: dict[str, Method] = {"raw": method_raw, "voxel": method_voxel, "pcu": method_pcu,
                              "poisson": method_poisson, "meshfix": method_meshfix}


# ---- shapes ---------------------------------------------------------------------------------------------------

def spread(total: int, labels: int) -> list[int]:
    """`total` samples over `labels` labels as evenly as they go, the first labels one more."""
    return [total // labels + (i < total % labels) for i in range(labels)]


def make_shapes(args: argparse.Namespace) -> int:
    """Samples of every label and full fits of test-split meshes, raw, in one npz."""
    import torch

    from backend.serving.service import ModelService

    torch.set_num_threads(args.threads)
    service = ModelService("cpu")
    info = service.load(args.model)
    out: dict[str, np.ndarray] = {}
    names: list[str] = []
    labels = list(info["labels"])
    counts = spread(args.samples, len(labels)) if args.samples else [args.per_label] * len(labels)
    for label, count in zip(labels, counts):
        if not count:
            continue
        for i, mesh in enumerate(service.sample(count, seed=args.seed, resolution=args.resolution, label=label,
                                                surface="patches", size="unit")):
            key = f"sample/{label}/{i}"
            out[key + "/v"], out[key + "/f"] = mesh.vertices, mesh.faces
            names.append(key)
        print(f"sampled {label}", file=sys.stderr, flush=True)
    if args.test_split:
        wanted = set(args.categories.split(",")) if args.categories else None
        for category in sorted(p for p in Path(args.test_split).iterdir() if p.is_dir()):
            if wanted is not None and category.name not in wanted:
                continue
            for path in sorted(category.iterdir())[:args.per_category]:
                real = load_mesh(path)
                start = time.perf_counter()
                fitted, cd = service.reconstruct(real, resolution=args.resolution, fit=args.fit, surface="patches")
                norm = normalisation_of(real.vertices)
                key = f"test/{category.name}/{path.stem}"
                out[key + "/v"], out[key + "/f"] = norm.apply(fitted.vertices), fitted.faces
                out[key + "/rv"], out[key + "/rf"] = norm.apply(real.vertices), real.faces
                names.append(key)
                print(f"fitted {key}: Chamfer x1e-3 {cd:.2f}, {time.perf_counter() - start:.1f} s",
                      file=sys.stderr, flush=True)
    out["names"] = np.array(names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {len(names)} shapes to {args.out}")
    return 0


# ---- measure --------------------------------------------------------------------------------------------------

def measure_one(method: Method, v: np.ndarray, f: np.ndarray, reference: Mesh | None, budget: int,
                repeats: int) -> dict[str, Any]:
    """Close one shape `repeats` times; its metrics against the raw patches and the reference."""
    import trimesh

    times = []
    cv = cf = None
    for _ in range(repeats):
        start = time.perf_counter()
        cv, cf = method(v, f, budget)
        times.append(time.perf_counter() - start)
    assert cv is not None and cf is not None
    mesh = trimesh.Trimesh(cv, cf, process=False)
    closed = surface_points(cv, cf, POINTS, 1)
    row: dict[str, Any] = {"watertight": bool(mesh.is_watertight), "winding": bool(mesh.is_winding_consistent),
                           "pieces": pieces(cf, len(cv)), "faces": int(len(cf)), "seconds": statistics.median(times)}
    row["chamfer_raw"], row["nc_raw"] = compare(closed, surface_points(v, f, POINTS, 2))
    if reference is not None:
        row["chamfer_ref"], row["nc_ref"] = compare(closed, surface_points(reference.vertices, reference.faces,
                                                                            POINTS, 3))
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Shares, medians and means of a method's rows on one shape set."""
    out: dict[str, Any] = {"shapes": len(rows), "failed": sum("error" in r for r in rows)}
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return out
    out["watertight"] = sum(r["watertight"] for r in ok) / len(rows)
    out["winding"] = sum(r["winding"] for r in ok) / len(rows)
    out["one_piece"] = sum(r["pieces"] == 1 for r in ok) / len(rows)
    for key in ("pieces", "faces", "seconds", "chamfer_raw", "nc_raw", "chamfer_ref", "nc_ref"):
        values = [r[key] for r in ok if key in r]
        if values:
            out[key + "_median"] = statistics.median(values)
            out[key + "_mean"] = statistics.fmean(values)
    return out


def measure(args: argparse.Namespace) -> int:
    data = np.load(args.shapes)
    names = [str(n) for n in data["names"]]
    if args.limit:
        by_set: dict[str, list[str]] = {}
        for n in names:
            by_set.setdefault(n.split("/")[0], []).append(n)
        names = [n for group in by_set.values() for n in group[::max(1, len(group) // args.limit)][:args.limit]]
    results: dict[str, Any] = {"machine": machine(), "budget": args.face_budget, "methods": {}}
    for method_name in args.methods.split(","):
        method = METHODS[method_name]
        rows: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            v, f = data[name + "/v"], data[name + "/f"]
            reference = Mesh(data[name + "/rv"], data[name + "/rf"]) if name + "/rv" in data else None
            repeats = args.repeats if method_name in ("voxel",) else 1
            try:
                row = measure_one(method, v, f, reference, args.face_budget, repeats)
            except Exception as exc:  # a method that fails on a shape is a result, not a crash of the bench
                row = {"error": f"{type(exc).__name__}: {exc}"}
            row["name"] = name
            rows.setdefault(name.split("/")[0], []).append(row)
            print(method_name, name, {k: (round(x, 4) if isinstance(x, float) else x) for k, x in row.items()},
                  file=sys.stderr, flush=True)
        results["methods"][method_name] = {s: {"summary": summarise(r), "rows": r} for s, r in rows.items()}
        for shape_set, entry in results["methods"][method_name].items():
            print(method_name, shape_set, json.dumps({k: round(x, 4) if isinstance(x, float) else x
                                                      for k, x in entry["summary"].items()}), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


# ---- memory ---------------------------------------------------------------------------------------------------

def _proc_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def memory_one(args: argparse.Namespace) -> int:
    """One closing in this process: the rise of peak resident memory over what the process held before it
    (libraries already imported, input built), the seconds, the grid and a digest of the output."""
    import hashlib

    import igl  # noqa: F401 - imported before the baseline, so only the closing's own memory counts
    import scipy.ndimage  # noqa: F401
    import skimage.measure  # noqa: F401
    import trimesh  # noqa: F401

    from backend import surface
    from backend.templates import template_mesh

    pts, faces = template_mesh(args.template, 1, args.resolution)
    vertices = pts.reshape(-1, pts.shape[-1]).astype(np.float64)
    if vertices.shape[1] == 2:  # a flat square patch: lift it into 3-D as a sheet
        vertices = np.concatenate([vertices, np.zeros((len(vertices), 1))], axis=1)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # reset the peak (VmHWM) to the current resident size
    before = _proc_kib("VmRSS")
    start = time.perf_counter()
    out = surface.closed_surface(vertices, faces, args.face_budget)
    seconds = time.perf_counter() - start
    peak = _proc_kib("VmHWM")
    digest = hashlib.sha256(out.vertices.tobytes() + out.faces.tobytes()).hexdigest()[:16]
    print(json.dumps({"rise_mib": (peak - before) / 1024, "seconds": seconds, "faces": int(len(out.faces)),
                      "digest": digest}))
    return 0


def memory(args: argparse.Namespace) -> int:
    """`--repeats` fresh processes, each closing the template shape once; the median rise and time."""
    import subprocess

    runs = []
    for _ in range(args.repeats):
        done = subprocess.run([sys.executable, "-m", "bench.bench_surface", "memory-one", "--template",
                               args.template, "--resolution", str(args.resolution), "--face-budget",
                               str(args.face_budget)], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent.parent)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"machine": machine(), "template": args.template, "resolution": args.resolution,
                      "face_budget": args.face_budget, "runs": len(runs),
                      "rise_mib_median": statistics.median(r["rise_mib"] for r in runs),
                      "seconds_median": statistics.median(r["seconds"] for r in runs),
                      "digests": sorted({r["digest"] for r in runs})}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("shapes", help="sample and full-fit the shapes once, into an npz")
    p.add_argument("--model", type=Path, default=Path(__file__).resolve().parent.parent / "models" / "base")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-label", type=int, default=5)
    p.add_argument("--samples", type=int, default=0, help="this many samples in all, spread over the labels "
                                                          "(instead of --per-label)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--resolution", type=int, default=2562)
    p.add_argument("--test-split", type=Path)
    p.add_argument("--per-category", type=int, default=1)
    p.add_argument("--fit", default="full")
    p.add_argument("--categories", default="", help="only these test-split categories, comma-separated")
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("measure", help="close every shape with each method and report")
    p.add_argument("--shapes", type=Path, required=True)
    p.add_argument("--methods", default="raw,voxel")
    p.add_argument("--face-budget", type=int, default=DEFAULT_FACE_BUDGET)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per shape (median) for backend.surface")
    p.add_argument("--limit", type=int, default=0, help="at most this many shapes per set (spread over it)")
    p.add_argument("--out", type=Path)
    for name, help_text in (("memory", "peak memory of closing a template shape, fresh processes"),
                            ("memory-one", "one closing in this process (memory runs it)")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--template", default="sphere", choices=("sphere", "squares"))
        p.add_argument("--resolution", type=int, default=2562)
        p.add_argument("--face-budget", type=int, default=MAX_FACE_BUDGET)
        p.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    commands = {"shapes": make_shapes, "measure": measure, "memory": memory, "memory-one": memory_one}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
