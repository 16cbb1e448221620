"""Point-cloud metrics in the PointFlow / AtlasNet conventions: Chamfer, F-score, MMD-CD, COV-CD, 1-NNA-CD;
improved precision and recall in Chamfer space, distance to the nearest training shape, normal
consistency, and the number of pieces of a decoded shape (definitions: docs/benchmarks.md, "Definitions").

Chamfer distance is the mean squared nearest-neighbour distance a->b plus b->a (no square root); inputs
are expected in the unit ball. Nearest neighbours come from scipy KD-trees, one per cloud, reused.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from tqdm import tqdm

from backend.errors import ConfigError


def chamfer(a: Any, b: Any) -> float:
    """Mean over a of the squared distance to the nearest b, plus the same from b to a."""
    d_ab, d_ba = _nearest(_cloud(a, "a"), _cloud(b, "b"))
    return float(np.mean(d_ab**2) + np.mean(d_ba**2))


def fscore(a: Any, b: Any, threshold: float = 0.01) -> float:
    """F-score at a distance threshold: a is the prediction, b the ground truth."""
    limit = _threshold(threshold)
    d_ab, d_ba = _nearest(_cloud(a, "a"), _cloud(b, "b"))
    return _fscore(d_ab, d_ba, limit)


def pairwise_chamfer(xs: Any, ys: Any, progress: bool = False) -> np.ndarray:
    """Chamfer distance between every x and every y, shape (len(xs), len(ys)); one KD-tree per cloud."""
    clouds_x = _clouds(xs, "xs")
    if ys is xs:
        half = _mean_sq_nearest(clouds_x, clouds_x, progress)
        return half + half.T
    clouds_y = _clouds(ys, "ys")
    to_y = _mean_sq_nearest(clouds_y, clouds_x, progress)  # [j, i]: x_i's points to cloud y_j
    to_x = _mean_sq_nearest(clouds_x, clouds_y, progress)  # [i, j]: y_j's points to cloud x_i
    return to_y.T + to_x


PR_NEIGHBOURS = 3  # k of improved precision/recall (Kynkäänniemi et al. 2019 use 3)
PIECE_GAP = 0.02  # patches closer than this share of the shape's bounding-box diagonal are one piece
NEAREST_SHORTLIST = 8  # candidates per query that nearest_distances checks at full point count
NEAREST_COARSE_POINTS = 64  # points per cloud in nearest_distances' shortlisting pass


def generation_metrics(samples: Any, refs: Any, progress: bool = False, k: int = PR_NEIGHBOURS
                       ) -> dict[str, float]:
    """MMD-CD (x1e3), COV-CD, 1-NNA-CD and improved precision/recall of generated samples against references.

    One Chamfer matrix over samples and references serves all five: precision and recall reuse its
    sample-sample and reference-reference blocks for their k-NN radii.
    """
    gen = _clouds(samples, "samples")
    ref = _clouds(refs, "refs")
    both = gen + ref
    dist = pairwise_chamfer(both, both, progress=progress)
    n = len(gen)
    cross = dist[:n, n:]
    mmd = float(cross.min(axis=0).mean())
    cov = len(np.unique(cross.argmin(axis=1))) / len(ref)
    precision, recall = precision_recall(cross, dist[n:, n:], dist[:n, :n], k)
    is_sample = np.arange(len(both)) < n
    np.fill_diagonal(dist, np.inf)
    nearest = dist.argmin(axis=1)
    nna = float(np.mean(is_sample[nearest] == is_sample))
    return {"mmd_cd": mmd * 1e3, "cov_cd": float(cov), "nna_cd": nna, "precision": precision, "recall": recall}


def precision_recall(gen_ref: Any, ref_ref: Any, gen_gen: Any, k: int = PR_NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) from distance matrices (any dissimilarity).

    Each reference's radius is its distance to its k-th nearest other reference; precision is the share
    of samples within some reference's radius (fidelity). Recall swaps the roles: the share of references
    within some sample's radius, radii from the samples' own k-th neighbours (diversity: samples collapsed
    onto one shape have radius 0 and recall nothing else). A set of n <= k uses its k = n - 1.
    """
    cross = _matrix(gen_ref, "gen_ref")
    refs = _square(ref_ref, "ref_ref", cross.shape[1])
    gens = _square(gen_gen, "gen_gen", cross.shape[0])
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    precision = np.any(cross <= _knn_radius(refs, k)[None, :], axis=1)
    recall = np.any(cross <= _knn_radius(gens, k)[:, None], axis=0)
    return float(precision.mean()), float(recall.mean())


def nearest_distances(queries: Any, train: Any, shortlist: int = NEAREST_SHORTLIST,
                      coarse_points: int = NEAREST_COARSE_POINTS) -> np.ndarray:
    """Chamfer from each query cloud to its nearest training cloud, shape (len(queries),).

    All pairs are first compared on `coarse_points` points of each cloud (a fixed random subset, one dense
    distance block per query); each query's `shortlist` nearest candidates are then compared at full point
    count and the least taken. The answer is exact whenever the true nearest is on the shortlist (always
    when shortlist >= len(train)), and never below the true nearest distance.
    """
    qs = _clouds(queries, "queries")
    ts = _clouds(train, "train")
    for name, value in (("shortlist", shortlist), ("coarse_points", coarse_points)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if shortlist >= len(ts):
        return np.asarray(pairwise_chamfer(qs, ts).min(axis=1))
    rng = np.random.default_rng(0)
    coarse_t = [_subset(t, coarse_points, rng) for t in ts]
    stacked = np.concatenate(coarse_t).astype(np.float32)
    owner = np.repeat(np.arange(len(ts)), [len(t) for t in coarse_t])
    starts = np.concatenate([[0], np.cumsum([len(t) for t in coarse_t])[:-1]])
    out = np.empty(len(qs))
    for i, q in enumerate(qs):
        coarse = _coarse_chamfers(_subset(q, coarse_points, rng).astype(np.float32), stacked, owner, starts)
        picks = np.argsort(coarse, kind="stable")[:shortlist]
        out[i] = min(chamfer(q, ts[j]) for j in picks)
    return out


def _coarse_chamfers(q: np.ndarray, stacked: np.ndarray, owner: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Chamfer from one small cloud to each small cloud in `stacked` (owner[i]: the cloud of row i), from one
    dense squared-distance block: far cheaper than KD-trees at a few dozen points a cloud."""
    d2 = (q * q).sum(axis=1)[:, None] + (stacked * stacked).sum(axis=1)[None, :] - 2.0 * (q @ stacked.T)
    np.maximum(d2, 0.0, out=d2)
    q_to_t = np.minimum.reduceat(d2, starts, axis=1).mean(axis=0)
    t_to_q = d2.min(axis=0)
    counts = np.bincount(owner)
    return np.asarray(q_to_t + np.bincount(owner, weights=t_to_q) / counts)


def nearest_summary(sample_to_train: Any, heldout_to_train: Any) -> dict[str, float]:
    """Medians of samples' and held-out shapes' Chamfer (x1e3) to their nearest training shape, and the
    ratio samples / held-out: about 1 when samples are as novel as unseen real shapes, well below 1 for
    copies of the training set, well above for blurred averages that resemble no real shape."""
    gen = _distances(sample_to_train, "sample_to_train")
    held = _distances(heldout_to_train, "heldout_to_train")
    gen_median, held_median = float(np.median(gen)), float(np.median(held))
    ratio = gen_median / held_median if held_median > 0 else float("inf")
    return {"sample_to_train_x1e3": gen_median * 1e3, "heldout_to_train_x1e3": held_median * 1e3,
            "ratio": ratio}


def normal_consistency(points_a: Any, normals_a: Any, points_b: Any, normals_b: Any) -> float:
    """Mean |cos| between each point's normal and the normal of its nearest point in the other set, averaged
    over both directions (Occupancy Networks, Mescheder et al. 2019): 1 for the same surface, whatever the
    normals' signs (a decoded patch has no inside); 0 where every normal is at right angles to the other's."""
    a, b = _cloud(points_a, "points_a"), _cloud(points_b, "points_b")
    na, nb = _unit_normals(normals_a, len(a), "normals_a"), _unit_normals(normals_b, len(b), "normals_b")
    _, ia = cKDTree(b).query(a, k=1, workers=-1)
    _, ib = cKDTree(a).query(b, k=1, workers=-1)
    a_to_b = np.abs(np.sum(na * nb[ia], axis=1)).mean()
    b_to_a = np.abs(np.sum(nb * na[ib], axis=1)).mean()
    return float(np.clip(0.5 * (a_to_b + b_to_a), 0.0, 1.0))


def patch_pieces(patches: Any, gap: float = PIECE_GAP) -> int:
    """Pieces of a patch model's raw output: patches (K, P, 3) (or a list of (P_k, 3)) whose points come
    within `gap` x the shape's bounding-box diagonal of each other are one piece; each patch, the image
    of a square or a sphere under a continuous map, is connected in itself."""
    clouds = _clouds(patches, "patches")
    limit = _threshold(gap, "gap")
    everything = np.concatenate(clouds)
    reach = limit * float(np.linalg.norm(everything.max(axis=0) - everything.min(axis=0)))
    trees = [cKDTree(c) for c in clouds]
    rows, cols = [], []
    for i in range(len(clouds)):
        for j in range(i + 1, len(clouds)):
            d, _ = trees[i].query(clouds[j], k=1, distance_upper_bound=reach, workers=-1)
            if np.any(d <= reach):
                rows.append(i)
                cols.append(j)
    return _components(rows, cols, len(clouds))


def mesh_pieces(faces: Any, vertex_count: int) -> int:
    """Connected components of a triangle mesh's faces, faces joined where they share a vertex (vertices
    used by no face do not count)."""
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.kind not in "iu":
        raise ConfigError(f"faces must be an integer array of shape (F, 3), got {f.dtype} {f.shape}")
    if len(f) and (f.min() < 0 or f.max() >= vertex_count):
        raise ConfigError(f"faces index vertices outside 0..{vertex_count - 1}")
    used = np.unique(f)
    rows = np.concatenate([f[:, 0], f[:, 1]])
    cols = np.concatenate([f[:, 1], f[:, 2]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(vertex_count, vertex_count))
    _, component = connected_components(graph, directed=False)
    return int(len(np.unique(component[used])))


def reconstruction_metrics(preds: Any, gts: Any, threshold: float = 0.01) -> dict[str, float]:
    """Mean Chamfer (x1e3) and mean F-score of each prediction against its ground truth."""
    limit = _threshold(threshold)
    pred = _clouds(preds, "preds")
    gt = _clouds(gts, "gts")
    if len(pred) != len(gt):
        raise ConfigError(f"preds and gts must pair up: {len(pred)} predictions, {len(gt)} ground truths")
    chamfers, scores = [], []
    for p, g in zip(pred, gt):
        d_pg, d_gp = _nearest(p, g)
        chamfers.append(np.mean(d_pg**2) + np.mean(d_gp**2))
        scores.append(_fscore(d_pg, d_gp, limit))
    return {"chamfer_x1e3": float(np.mean(chamfers)) * 1e3, "fscore": float(np.mean(scores))}


def _components(rows: list[int], cols: list[int], n: int) -> int:
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    count, _ = connected_components(graph, directed=False)
    return int(count)


def _knn_radius(square: np.ndarray, k: int) -> np.ndarray:
    """Each member's distance to its k-th nearest other member (k capped at n - 1); inf for a lone member."""
    n = len(square)
    if n < 2:
        return np.full(n, np.inf)
    others = square + np.diag(np.full(n, np.inf))
    return np.asarray(np.sort(others, axis=1)[:, min(k, n - 1) - 1])


def _subset(cloud: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return cloud if len(cloud) <= count else cloud[rng.choice(len(cloud), count, replace=False)]


def _matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ConfigError(f"{name} must be a non-empty 2-D distance matrix, got shape {arr.shape}")
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ConfigError(f"{name} must hold distances >= 0")
    return arr


def _square(x: Any, name: str, n: int) -> np.ndarray:
    arr = _matrix(x, name)
    if arr.shape != (n, n):
        raise ConfigError(f"{name} must have shape ({n}, {n}) to match gen_ref, got {arr.shape}")
    return arr


def _distances(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(arr) == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"{name} must be a non-empty list of finite distances >= 0")
    return arr


def _unit_normals(x: Any, count: int, name: str) -> np.ndarray:
    arr = _cloud(x, name)
    if len(arr) != count:
        raise ConfigError(f"{name} has {len(arr)} normals for {count} points")
    length = np.linalg.norm(arr, axis=1, keepdims=True)
    if not np.all(length > 0):
        raise ConfigError(f"{name} contains zero-length normals")
    return np.asarray(arr / length)


def _threshold(value: Any, name: str = "threshold") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0:
        raise ConfigError(f"{name} must be a positive distance, got {value!r}")
    if not np.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return float(value)


def _fscore(d_pred_gt: np.ndarray, d_gt_pred: np.ndarray, threshold: float) -> float:
    precision = float(np.mean(d_pred_gt < threshold))
    recall = float(np.mean(d_gt_pred < threshold))
    if precision + recall == 0.0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each point of a to its nearest in b, and from each b to its nearest in a."""
    d_ab, _ = cKDTree(b).query(a, k=1, workers=-1)
    d_ba, _ = cKDTree(a).query(b, k=1, workers=-1)
    return d_ab, d_ba


def _mean_sq_nearest(targets: list[np.ndarray], queries: list[np.ndarray],
                     progress: bool) -> npt.NDArray[np.float64]:
    """[k, j] = mean over the points of queries[j] of the squared distance to the nearest of targets[k].

    All query clouds are stacked and sent to each target's KD-tree in one call, so the Python loop runs
    once per cloud rather than once per pair.
    """
    stacked = np.concatenate(queries)
    sizes = np.array([len(q) for q in queries])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = np.empty((len(targets), len(queries)))
    bar = tqdm(targets, desc="Chamfer", unit="cloud", file=sys.stderr, disable=not progress, leave=False)
    for k, target in enumerate(bar):
        d, _ = cKDTree(target).query(stacked, k=1, workers=-1)
        out[k] = np.add.reduceat(d * d, starts) / sizes
    return out


def _cloud(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a numeric array of shape (N, 3) ({exc})") from exc
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ConfigError(f"{name} must have shape (N, 3), got {arr.shape}")
    if len(arr) == 0:
        raise ConfigError(f"{name} has no points")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} contains NaN or infinite coordinates")
    return arr


def _clouds(xs: Any, name: str) -> list[np.ndarray]:
    if isinstance(xs, np.ndarray):
        if xs.ndim != 3:
            raise ConfigError(f"{name} must be a list of (N, 3) clouds or an array (S, N, 3), got {xs.shape}")
        items: Sequence[Any] = list(xs)
    elif isinstance(xs, Sequence) and not isinstance(xs, (str, bytes)):
        items = xs
    else:
        raise ConfigError(f"{name} must be a list of (N, 3) point clouds, got {type(xs).__name__}")
    if len(items) == 0:
        raise ConfigError(f"{name} contains no point clouds")
    return [_cloud(x, f"{name}[{i}]") for i, x in enumerate(items)]
