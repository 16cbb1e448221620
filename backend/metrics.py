"""Point-cloud metrics in the PointFlow / AtlasNet conventions: Chamfer, F-score, MMD-CD, COV-CD, 1-NNA-CD.

Chamfer distance is the mean squared nearest-neighbour distance a->b plus b->a (no square root); inputs
are expected in the unit ball. Nearest neighbours come from scipy KD-trees, one per cloud, reused.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
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


def generation_metrics(samples: Any, refs: Any, progress: bool = False) -> dict[str, float]:
    """MMD-CD (x1e3), COV-CD and 1-NNA-CD of generated samples against reference shapes."""
    gen = _clouds(samples, "samples")
    ref = _clouds(refs, "refs")
    both = gen + ref
    dist = pairwise_chamfer(both, both, progress=progress)
    n = len(gen)
    cross = dist[:n, n:]
    mmd = float(cross.min(axis=0).mean())
    cov = len(np.unique(cross.argmin(axis=1))) / len(ref)
    is_sample = np.arange(len(both)) < n
    np.fill_diagonal(dist, np.inf)
    nearest = dist.argmin(axis=1)
    nna = float(np.mean(is_sample[nearest] == is_sample))
    return {"mmd_cd": mmd * 1e3, "cov_cd": float(cov), "nna_cd": nna}


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


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0:
        raise ConfigError(f"threshold must be a positive distance, got {value!r}")
    if not np.isfinite(value):
        raise ConfigError(f"threshold must be finite, got {value!r}")
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
