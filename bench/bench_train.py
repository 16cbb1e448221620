"""Training throughput: the default config (shapes/s) and AtlasNet's own architecture (s/step)."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from backend.losses import chamfer_per_shape, kl_divergence
from backend.model import AtlasVAE, ModelConfig
from backend.templates import random_points
from backend.training.config import TrainConfig
from bench.common import machine, median_time


def step_fn(cfg: ModelConfig, batch: int, points: int, beta: float):
    """One optimiser step on random unit-ball clouds, as the training loop does it."""
    model = AtlasVAE(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((batch, points, 3)).astype(np.float32))
    x = x / x.norm(dim=-1, keepdim=True)

    def step() -> None:
        template = random_points(cfg.template, cfg.patches, points)
        pred, mu, logvar = model(x, template)
        loss = chamfer_per_shape(pred, x).mean()
        if logvar is not None:
            loss = loss + beta * kl_divergence(mu, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    d = TrainConfig(out="")
    print(f"machine: {machine()}")
    t, times = median_time(step_fn(d.model, d.batch_size, d.points, d.beta), repeats=7, warmup=2)
    print(f"default config (batch {d.batch_size}, {d.points} points, latent {d.model.latent_dim}, "
          f"decoder {d.model.decoder_width}x{d.model.decoder_layers}): {t:.3f} s/step = {d.batch_size / t:.1f} shapes/s "
          f"(median of 7)")
    if not args.skip_reference:
        ref = ModelConfig.atlasnet_reference(mode="ae")
        t, times = median_time(step_fn(ref, 32, 2500, 0.0), repeats=3, warmup=1)
        print(f"AtlasNet reference architecture (1 sphere, 1024 bottleneck, batch 32, 2500 points): "
              f"{t:.2f} s/step (median of 3: {', '.join(f'{x:.2f}' for x in times)}); reference code ~24 s/step")


if __name__ == "__main__":
    main()
