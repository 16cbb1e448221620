"""Training-time augmentation: shapes mirrored across their x = 0 plane and stretched per axis.

Each shape of a step gets its own draw: with probability `mirror` its x coordinates change sign (the
corpus's objects are mostly left-right symmetric, so a mirrored shape is a plausible new one), and with
`scale` > 0 each axis is multiplied by a factor drawn uniformly from [1 - scale, 1 + scale], after which
the shape is rescaled so that its farthest cached point lies as far from the centre as before (the unit
ball the model works in stays filled as the data fill it). Both are off by default.

The draws come from their own generator (`augment_rng`), so turning augmentation on or off never changes
which surface points a step picks, and they cover the whole global batch, so data-parallel ranks agree.
"""

from __future__ import annotations

import numpy as np
import torch

AUGMENT_STREAM = 7  # the last key of augmentation's generator, so it never repeats the picks' stream


def augment_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's augmentation draws, apart from the point picks' generator."""
    return np.random.default_rng([seed, epoch, AUGMENT_STREAM])


def draw_factors(count: int, mirror: float, scale: float, rng: np.random.Generator) -> np.ndarray | None:
    """Per-shape, per-axis factors (count, 3) for one step's `count` shapes, or None when both are off.

    A mirrored shape's x factor is negative; each factor's size is its axis's stretch.
    """
    if mirror <= 0.0 and scale <= 0.0:
        return None
    flips = rng.random(count) < mirror
    stretch = rng.uniform(1.0 - scale, 1.0 + scale, (count, 3))
    stretch[flips, 0] *= -1.0
    return stretch


def apply_factors(points: torch.Tensor, cloud: torch.Tensor, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
    """`points` (B, P, 3) picked from `cloud` (B, N, 3, each shape's whole cached cloud) transformed by
    `factors` (B, 3), then rescaled so each shape's farthest cloud point keeps its distance from the centre.
    """
    f = torch.as_tensor(factors, dtype=points.dtype, device=points.device)[:, None, :]
    before = cloud.norm(dim=2).amax(dim=1)
    after = (cloud * f).norm(dim=2).amax(dim=1)
    ratio = torch.where(after > 0, before / after.clamp_min(torch.finfo(after.dtype).tiny), torch.ones_like(after))
    return points * f * ratio[:, None, None]
