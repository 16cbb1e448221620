"""Chamfer and KL losses against brute-force references: values, gradients, free bits, bad shapes."""

from __future__ import annotations

import pytest
import torch

from backend.losses import _nn_chunked, chamfer_loss, chamfer_per_shape, kl_divergence, nearest_indices


def brute_chamfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Full pairwise squared distances, min both ways, means: the definition, with autograd throughout."""
    d = (a[:, :, None, :] - b[:, None, :, :]).square().sum(-1)
    return d.min(dim=2).values.mean(1) + d.min(dim=1).values.mean(1)


def _clouds(seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 37, 3, generator=g, dtype=dtype)
    b = torch.randn(3, 53, 3, generator=g, dtype=dtype) * 0.7 + 0.2
    return a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chamfer_value_and_gradients_match_brute_force(seed: int) -> None:
    a, b = _clouds(seed)
    a1, b1 = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    a2, b2 = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    ours = chamfer_per_shape(a1, b1)
    ref = brute_chamfer(a2, b2)
    assert ours.shape == (3,)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    weights = torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64)
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    assert a1.grad is not None and b1.grad is not None
    torch.testing.assert_close(a1.grad, a2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-10, atol=1e-12)
    assert a1.grad.abs().sum() > 0 and b1.grad.abs().sum() > 0


def test_chamfer_float32_close_to_reference() -> None:
    a, b = _clouds(5, torch.float32)
    torch.testing.assert_close(chamfer_per_shape(a, b), brute_chamfer(a.double(), b.double()).float(),
                               rtol=1e-5, atol=1e-7)


def test_chamfer_loss_is_batch_mean_and_zero_for_identical_clouds() -> None:
    a, b = _clouds(3)
    torch.testing.assert_close(chamfer_loss(a, b), brute_chamfer(a, b).mean())
    assert chamfer_loss(a, a).item() == 0.0
    # Order of points does not matter.
    perm = torch.randperm(a.shape[1])
    assert chamfer_loss(a, a[:, perm]).item() == 0.0


def test_chamfer_known_value() -> None:
    a = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    b = torch.tensor([[[0.0, 0.0, 2.0]]])
    # a->b: (4 + 5) / 2; b->a: 4.
    torch.testing.assert_close(chamfer_per_shape(a, b), torch.tensor([8.5]))


def test_chunked_search_matches_kdtree() -> None:
    a, b = _clouds(4)
    ab, ba = nearest_indices(a, b)
    torch.testing.assert_close(_nn_chunked(a, b, chunk=7), ab)
    torch.testing.assert_close(_nn_chunked(b, a, chunk=5), ba)
    assert ab.dtype == torch.int64 and ab.shape == (3, 37) and ba.shape == (3, 53)


@pytest.mark.parametrize("sa,sb", [((2, 10, 3), (3, 10, 3)), ((10, 3), (10, 3)), ((2, 10, 2), (2, 10, 2)),
                                   ((2, 10, 3), (2, 10, 4)), ((2, 10, 3), (2, 3))])
def test_chamfer_invalid_shapes_raise(sa: tuple, sb: tuple) -> None:
    with pytest.raises(ValueError, match="chamfer expects"):
        chamfer_per_shape(torch.zeros(sa), torch.zeros(sb))


def test_kl_matches_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 7, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 7, generator=g, dtype=torch.float64)
    # KL(N(mu, s^2) || N(0, 1)) = log(1/s) + (s^2 + mu^2) / 2 - 1/2 per dimension.
    s = torch.exp(0.5 * logvar)
    per_item = (torch.log(1 / s) + (s ** 2 + mu ** 2) / 2 - 0.5).sum(1)
    torch.testing.assert_close(kl_divergence(mu, logvar), per_item.mean())
    assert kl_divergence(torch.zeros(4, 3), torch.zeros(4, 3)).item() == 0.0


def test_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(6, 4, generator=g, dtype=torch.float64)
    logvar = torch.randn(6, 4, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ref = torch.distributions.kl_divergence(q, p).sum(1).mean()
    torch.testing.assert_close(kl_divergence(mu, logvar), ref)


def test_free_bits_clamp_each_dimension() -> None:
    # Dimension 0 carries a large KL (mu = 3 -> 4.5 nats), dimension 1 none at all.
    mu = torch.tensor([[3.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    logvar = torch.zeros(2, 2, dtype=torch.float64)
    assert kl_divergence(mu, logvar).item() == pytest.approx(4.5)
    # Per dimension: max(4.5, 0.5) + max(0, 0.5).
    assert kl_divergence(mu, logvar, free_bits=0.5).item() == pytest.approx(5.0)
    # A clamped dimension passes no gradient; an unclamped one does.
    mu.requires_grad_(True)
    kl_divergence(mu, logvar, free_bits=0.5).backward()
    assert mu.grad is not None
    assert torch.all(mu.grad[:, 0] != 0) and torch.all(mu.grad[:, 1] == 0)


def test_kl_mismatched_shapes_raise() -> None:
    for mu_shape, logvar_shape in (((4, 8), (4, 5)), ((4, 8), (4, 1)), ((8,), (8,))):
        with pytest.raises(ValueError, match="kl_divergence expects"):
            kl_divergence(torch.zeros(mu_shape), torch.zeros(logvar_shape))
