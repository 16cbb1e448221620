"""Point-cloud metrics against brute-force numpy references (backend/metrics.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from backend.errors import ConfigError
from backend.metrics import chamfer, fscore, generation_metrics, pairwise_chamfer, reconstruction_metrics


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
    assert set(result) == {"mmd_cd", "cov_cd", "nna_cd"}
    assert result["mmd_cd"] == 0.0
    assert result["cov_cd"] == 1.0


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
    ],
)
def test_bad_inputs_get_clear_errors(call: Callable[[], object], phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase):
        call()
