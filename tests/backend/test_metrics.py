"""Point-cloud metrics against brute-force numpy references (backend/metrics.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from backend.errors import ConfigError
from backend.metrics import (chamfer, fscore, generation_metrics, mesh_pieces, nearest_distances, nearest_summary,
                             normal_consistency, pairwise_chamfer, patch_pieces, precision_recall,
                             reconstruction_metrics)


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)


def ref_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d = sq_dists(a, b)
    return float(d.min(axis=1).mean() + d.min(axis=0).mean())


def ref_fscore(pred: np.ndarray, gt: np.ndarray, t: float) -> float:
    d = np.sqrt(sq_dists(pred, gt))
    precision, recall = (d.min(axis=1) < t).mean(), (d.min(axis=0) < t).mean()
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def ref_nna(samples: list[np.ndarray], refs: list[np.ndarray]) -> float:
    clouds = samples + refs
    is_sample = np.arange(len(clouds)) < len(samples)
    correct = 0
    for i, x in enumerate(clouds):
        others = [(ref_chamfer(x, y), j) for j, y in enumerate(clouds) if j != i]
        correct += is_sample[min(others)[1]] == is_sample[i]
    return correct / len(clouds)


def clouds(rng: np.random.Generator, count: int, points: int, shift: float = 0.0) -> list[np.ndarray]:
    """Noisy ellipsoid surfaces with random proportions."""
    out = []
    for _ in range(count):
        d = rng.normal(size=(points, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        out.append(d * rng.uniform(0.3, 0.9, size=3) + shift)
    return out


def test_chamfer_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, (150, 3)), rng.uniform(-1, 1, (90, 3))
    assert chamfer(a, b) == pytest.approx(ref_chamfer(a, b), rel=1e-10)
    assert chamfer(a, b) == pytest.approx(chamfer(b, a), rel=1e-12)
    assert chamfer(a, a) == 0.0
    assert chamfer(a.astype(np.float32), b.tolist()) == pytest.approx(ref_chamfer(a, b), rel=1e-6)


def test_chamfer_is_squared_not_rooted() -> None:
    a = np.zeros((1, 3))
    b = np.array([[0.1, 0.0, 0.0]])
    assert chamfer(a, b) == pytest.approx(2 * 0.01)


def test_fscore_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    gt = rng.uniform(-1, 1, (200, 3))
    pred = gt[:150] + rng.normal(scale=0.01, size=(150, 3))
    for t in (0.005, 0.01, 0.05):
        assert fscore(pred, gt, t) == pytest.approx(ref_fscore(pred, gt, t))
    assert fscore(gt, gt) == 1.0
    assert fscore(gt, gt + 10.0) == 0.0


def test_fscore_threshold_is_a_distance() -> None:
    gt = np.zeros((1, 3))
    near = np.array([[0.009, 0.0, 0.0]])
    assert fscore(near, gt, threshold=0.01) == 1.0
    assert fscore(near, gt, threshold=0.0085) == 0.0


def test_pairwise_chamfer_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    xs = [rng.uniform(-1, 1, (n, 3)) for n in (30, 45, 60)]
    ys = [rng.uniform(-1, 1, (n, 3)) for n in (20, 50, 35, 40)]
    expected = np.array([[ref_chamfer(x, y) for y in ys] for x in xs])
    np.testing.assert_allclose(pairwise_chamfer(xs, ys), expected, rtol=1e-10)
    np.testing.assert_allclose(pairwise_chamfer(np.stack(xs[:1] * 2), ys), expected[[0, 0]], rtol=1e-10)


def test_pairwise_chamfer_of_a_set_with_itself_is_symmetric() -> None:
    rng = np.random.default_rng(3)
    xs = [rng.uniform(-1, 1, (40, 3)) for _ in range(5)]
    d = pairwise_chamfer(xs, xs)
    np.testing.assert_allclose(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    np.testing.assert_allclose(d, [[ref_chamfer(x, y) for y in xs] for x in xs], rtol=1e-10)


def test_generation_metrics_when_samples_are_the_references() -> None:
    refs = clouds(np.random.default_rng(4), 8, 64)
    result = generation_metrics(refs, [r.copy() for r in refs])
    assert set(result) == {"mmd_cd", "cov_cd", "nna_cd", "precision", "recall"}
    assert result["mmd_cd"] == 0.0
    assert result["cov_cd"] == 1.0
    assert result["precision"] == 1.0 and result["recall"] == 1.0


def test_generation_metrics_mmd_and_cov_by_hand() -> None:
    rng = np.random.default_rng(5)
    refs = clouds(rng, 5, 48)
    samples = clouds(rng, 7, 48)
    d = np.array([[ref_chamfer(s, r) for r in refs] for s in samples])
    result = generation_metrics(samples, refs)
    assert result["mmd_cd"] == pytest.approx(d.min(axis=0).mean() * 1e3)
    assert result["cov_cd"] == pytest.approx(len(set(d.argmin(axis=1))) / len(refs))
    assert result["nna_cd"] == pytest.approx(ref_nna(samples, refs))


def test_one_nna_is_one_for_separated_sets_and_near_half_for_one_distribution() -> None:
    rng = np.random.default_rng(6)
    refs = clouds(rng, 12, 48)
    far = clouds(rng, 12, 48, shift=5.0)
    assert generation_metrics(far, refs)["nna_cd"] == 1.0
    same = clouds(rng, 30, 48)
    assert 0.25 <= generation_metrics(same, clouds(rng, 30, 48))["nna_cd"] <= 0.75


def test_collapsed_samples_cover_little() -> None:
    rng = np.random.default_rng(7)
    refs = clouds(rng, 10, 48)
    collapsed = [refs[0].copy() for _ in range(10)]
    assert generation_metrics(collapsed, refs)["cov_cd"] == pytest.approx(0.1)


def test_collapsed_samples_are_precise_but_recall_one_shape() -> None:
    refs = clouds(np.random.default_rng(7), 10, 48)
    result = generation_metrics([refs[0].copy() for _ in range(10)], refs)
    assert result["precision"] == 1.0  # every sample is a reference, inside its own radius
    assert result["recall"] == 0.1  # the samples' k-NN radii are 0: only refs[0] itself is recalled


def line(xs: list[float], ys: list[float]) -> np.ndarray:
    return np.abs(np.subtract.outer(xs, ys))


def test_precision_and_recall_by_hand_on_a_line() -> None:
    refs, gens = [0.0, 1.0, 2.0, 3.0], [0.5, 10.0]
    # k = 1: every ref's radius is 1, so 0.5 is in and 10 is out; the samples' radii are 9.5, reaching all refs
    assert precision_recall(line(gens, refs), line(refs, refs), line(gens, gens), k=1) == (0.5, 1.0)
    # k = 3: the refs' radii are 2, 2, 2, 3, still short of 10; two samples cap k at 1
    assert precision_recall(line(gens, refs), line(refs, refs), line(gens, gens), k=3) == (0.5, 1.0)
    gens = [0.5, 1.5, 7.0]  # radii with k = 1: 1, 1, 5.5: 7.0 reaches 2 and 3, 0.5 reaches 0 and 1
    assert precision_recall(line(gens, refs), line(refs, refs), line(gens, gens), k=1) == (2 / 3, 1.0)
    gens = [0.5, 0.5, 0.5]  # collapsed: radius 0 recalls nothing, not even the refs 0.5 away
    assert precision_recall(line(gens, refs), line(refs, refs), line(gens, gens), k=1) == (1.0, 0.0)


def test_nearest_distances_match_the_full_matrix() -> None:
    rng = np.random.default_rng(9)
    train = clouds(rng, 12, 300)
    queries = [t + rng.normal(scale=0.01, size=t.shape) for t in train[:4]] + clouds(rng, 3, 300)
    exact = pairwise_chamfer(queries, train).min(axis=1)
    np.testing.assert_allclose(nearest_distances(queries, train, shortlist=12), exact, rtol=1e-12)
    shortlisted = nearest_distances(queries, train, shortlist=2, coarse_points=64)
    assert np.all(shortlisted >= exact * (1 - 1e-12))
    np.testing.assert_allclose(shortlisted[:4], exact[:4], rtol=1e-12)  # near-copies: their source is shortlisted


def test_nearest_summary_is_a_ratio_of_medians() -> None:
    result = nearest_summary([1e-3, 4e-3, 9e-3], [1e-3, 2e-3, 3e-3, 100.0])
    assert result["sample_to_train_x1e3"] == pytest.approx(4.0)
    assert result["heldout_to_train_x1e3"] == pytest.approx(2.5)
    assert result["ratio"] == pytest.approx(1.6)


def grid(z: float = 0.0, side: int = 5) -> np.ndarray:
    u, v = np.meshgrid(np.arange(side, dtype=float), np.arange(side, dtype=float))
    return np.stack([u.ravel(), v.ravel(), np.full(side * side, z)], axis=1)


def test_normal_consistency_by_construction() -> None:
    pts = grid()
    up = np.tile([0.0, 0.0, 1.0], (len(pts), 1))
    assert normal_consistency(pts, up, pts, -up) == 1.0  # the sign of a normal does not count
    assert normal_consistency(pts, up, pts, 3.0 * up) == 1.0  # nor its length
    side = np.tile([1.0, 0.0, 0.0], (len(pts), 1))
    assert normal_consistency(pts, up, pts, side) == 0.0
    tilted = np.tile([0.0, np.sqrt(3.0), 1.0], (len(pts), 1))  # 60 degrees from up: cos = 1/2
    assert normal_consistency(pts, up, pts, tilted) == pytest.approx(0.5, abs=1e-12)
    # b = a's points with a's normals plus as many far points whose nearest in a is at right angles:
    # a -> b matches all (1), b -> a half (0.5); the mean of the two directions is 0.75
    far = grid(z=10.0)
    b = np.concatenate([pts, far])
    assert normal_consistency(pts, up, b, np.concatenate([up, side])) == pytest.approx(0.75, abs=1e-12)


def square(x0: float, size: float = 1.0, n: int = 11) -> np.ndarray:
    """An n x n grid on the square [x0, x0 + size] x [0, size] in the plane z = 0."""
    u, v = np.meshgrid(np.linspace(x0, x0 + size, n), np.linspace(0.0, size, n))
    return np.stack([u.ravel(), v.ravel(), np.zeros(n * n)], axis=1)


def test_patch_pieces_by_proximity() -> None:
    assert patch_pieces([square(0.0)]) == 1
    assert patch_pieces([square(0.0), square(1.0)]) == 1  # sharing an edge
    assert patch_pieces([square(0.0), square(3.0)]) == 2
    assert patch_pieces(np.stack([square(0.0), square(1.0), square(2.0), square(5.0)])) == 2  # a chain, and one apart
    # bounding box of [0, 1] and [1 + g, 2 + g]: diagonal sqrt((2 + g)^2 + 1); the gap g is one piece
    # when g <= 0.02 * diagonal, i.e. below about 0.0451
    assert patch_pieces([square(0.0), square(1.04)]) == 1
    assert patch_pieces([square(0.0), square(1.05)]) == 2
    assert patch_pieces([square(0.0), square(1.05)], gap=0.03) == 1


def test_mesh_pieces_by_shared_vertices() -> None:
    faces = np.array([[0, 1, 2], [2, 3, 4], [5, 6, 7]])
    assert mesh_pieces(faces, 9) == 2  # vertex 8 belongs to no face
    assert mesh_pieces(faces[:2], 5) == 1
    assert mesh_pieces(np.array([[0, 1, 2], [3, 4, 5]]), 6) == 2


def test_reconstruction_metrics_average_per_shape() -> None:
    rng = np.random.default_rng(8)
    gts = clouds(rng, 4, 80)
    preds = [g + rng.normal(scale=0.01, size=g.shape) for g in gts]
    result = reconstruction_metrics(preds, gts)
    expected = np.mean([ref_chamfer(p, g) for p, g in zip(preds, gts)]) * 1e3
    assert result["chamfer_x1e3"] == pytest.approx(expected)
    assert result["fscore"] == pytest.approx(np.mean([ref_fscore(p, g, 0.01) for p, g in zip(preds, gts)]))


@pytest.mark.parametrize(
    "call, phrase",
    [
        (lambda: chamfer(np.zeros((5, 2)), np.zeros((5, 3))), r"a must have shape \(N, 3\), got \(5, 2\)"),
        (lambda: chamfer(np.zeros((5, 3)), np.zeros((0, 3))), "b has no points"),
        (lambda: chamfer(np.full((5, 3), np.nan), np.zeros((5, 3))), "a contains NaN or infinite"),
        (lambda: fscore(np.zeros((5, 3)), np.zeros((5, 3)), threshold=0.0), "threshold must be a positive"),
        (lambda: fscore(np.zeros((5, 3)), np.zeros((5, 3)), threshold=np.inf), "threshold must be finite"),
        (lambda: pairwise_chamfer([], [np.zeros((3, 3))]), "xs contains no point clouds"),
        (lambda: pairwise_chamfer(np.zeros((4, 3)), [np.zeros((3, 3))]), r"array \(S, N, 3\), got \(4, 3\)"),
        (lambda: generation_metrics([np.zeros((3, 3))], [np.zeros((3, 4))]), r"refs\[0\] must have shape"),
        (lambda: reconstruction_metrics([np.eye(3)] * 2, [np.eye(3)]), "2 predictions, 1 ground"),
        (lambda: reconstruction_metrics("clouds", [np.zeros((3, 3))]), "preds must be a list"),
        (lambda: precision_recall(np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((3, 3))), r"gen_gen must have shape \(2, 2\)"),
        (lambda: precision_recall(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), k=0), "k must be a positive"),
        (lambda: precision_recall(-np.ones((1, 1)), np.zeros((1, 1)), np.zeros((1, 1))), "gen_ref must hold distances"),
        (lambda: normal_consistency(np.zeros((2, 3)), np.ones((3, 3)), np.zeros((2, 3)), np.ones((2, 3))),
         "normals_a has 3 normals for 2 points"),
        (lambda: normal_consistency(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3))),
         "normals_a contains zero-length"),
        (lambda: patch_pieces([np.zeros((3, 3))], gap=0.0), "gap must be a positive"),
        (lambda: mesh_pieces(np.array([[0, 1, 5]]), 3), r"outside 0\.\.2"),
        (lambda: nearest_distances([np.zeros((3, 3))], [np.zeros((3, 3))], shortlist=0), "shortlist must be"),
        (lambda: nearest_summary([], [1.0]), "sample_to_train must be a non-empty"),
    ],
)
def test_bad_inputs_get_clear_errors(call: Callable[[], object], phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase):
        call()
