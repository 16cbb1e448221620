"""Training losses: squared Chamfer distance (AtlasNet's convention) and the Gaussian KL term.

The nearest-neighbour *choice* carries no gradient, so it is found without autograd (a KD-tree on the
CPU, chunked exact search elsewhere) and only the distance to the chosen point is differentiated.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy.spatial import cKDTree

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="chamfer-knn")


def _nn_kdtree(queries: np.ndarray, refs: np.ndarray) -> np.ndarray:
    indices: np.ndarray = cKDTree(refs).query(queries, k=1)[1]  # scipy is untyped: (distances, indices)
    return indices


def _nn_indices_cpu(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    an = a.detach().cpu().numpy().astype(np.float64, copy=False)
    bn = b.detach().cpu().numpy().astype(np.float64, copy=False)
    jobs_ab = [_POOL.submit(_nn_kdtree, an[i], bn[i]) for i in range(len(an))]
    jobs_ba = [_POOL.submit(_nn_kdtree, bn[i], an[i]) for i in range(len(an))]
    ab = np.stack([j.result() for j in jobs_ab])
    ba = np.stack([j.result() for j in jobs_ba])
    return torch.from_numpy(ab).to(a.device), torch.from_numpy(ba).to(a.device)


@torch.no_grad()
def _nn_chunked(queries: torch.Tensor, refs: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    out = []
    for start in range(0, queries.shape[1], chunk):
        q = queries[:, start:start + chunk]
        out.append(torch.cdist(q, refs).argmin(dim=-1))
    return torch.cat(out, dim=1)


def nearest_indices(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of each a-point's nearest b-point and each b-point's nearest a-point, (B, N) and (B, M)."""
    if a.device.type == "cpu":
        return _nn_indices_cpu(a, b)
    return _nn_chunked(a, b), _nn_chunked(b, a)


def _gather(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(points, 1, idx[..., None].expand(-1, -1, points.shape[-1]))


def chamfer_per_shape(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Chamfer per batch item: mean_a min_b |a-b|^2 + mean_b min_a |a-b|^2, shape (B,)."""
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[-1] != 3 or b.shape[-1] != 3:
        raise ValueError(f"chamfer expects (B, N, 3) and (B, M, 3), got {tuple(a.shape)} and {tuple(b.shape)}")
    ab, ba = nearest_indices(a, b)
    d_ab = (a - _gather(b, ab)).square().sum(-1).mean(1)
    d_ba = (b - _gather(a, ba)).square().sum(-1).mean(1)
    return d_ab + d_ba


def chamfer_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batch mean of the squared Chamfer distance."""
    return chamfer_per_shape(a, b).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float = 0.0) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dims, averaged over the batch.

    With free_bits > 0 each dimension's batch-mean KL below that many nats costs nothing, so the
    optimiser has no reason to collapse dimensions that carry little information.
    """
    if mu.dim() != 2 or logvar.shape != mu.shape:
        raise ValueError(f"kl_divergence expects mu and logvar both (B, D), got {tuple(mu.shape)} and "
                         f"{tuple(logvar.shape)}")
    per_dim = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).mean(0)
    if free_bits > 0:
        per_dim = per_dim.clamp_min(free_bits)
    return per_dim.sum()
