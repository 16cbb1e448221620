"""Pictures for people: loss curves and sheets of sampled shapes, written as PNG files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Training and validation Chamfer (x1e-3) and KL per epoch."""
    if not history:
        return
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [h["chamfer"] for h in history], label="train")
    ax1.plot(epochs, [h["val_chamfer"] for h in history], label="validation")
    ax1.set(xlabel="epoch", ylabel="Chamfer x1e-3", yscale="log", title="reconstruction")
    ax1.legend()
    ax2.plot(epochs, [h["kl"] for h in history], color="tab:red")
    ax2.set(xlabel="epoch", ylabel="nats", title="KL")
    fig.tight_layout()
    _save(fig, path, plt)


def _save(fig: Any, path: Path, plt: Any) -> None:
    """Render in memory, then write atomically (a full disk is an OutputError naming `path`)."""
    from .checkpoints import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())


def point_sheet(clouds: Sequence[np.ndarray] | np.ndarray, path: Path, titles: Sequence[str] | None = None,
                columns: int = 4) -> None:
    """A grid of 3-D scatter plots, one per point cloud (z up, as in Blender)."""
    plt = _pyplot()
    rows = max(1, -(-len(clouds) // columns))
    fig = plt.figure(figsize=(2.6 * columns, 2.6 * rows))
    for i, cloud in enumerate(clouds):
        ax = fig.add_subplot(rows, columns, i + 1, projection="3d")
        ax.scatter(cloud[:, 0], cloud[:, 1], cloud[:, 2], s=0.6, c=cloud[:, 2], cmap="viridis")
        ax.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1))
        ax.view_init(elev=25, azim=-50)
        ax.set_axis_off()
        if titles:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    _save(fig, path, plt)


def sample_sheet(model: Any, device: Any, path: Path, seed: int = 0, count: int = 8) -> None:
    """Eight shapes decoded from N(0, I) latents: a glance at what the model samples right now."""
    from .inference import decode_latents, sample_latents

    z = sample_latents(count, seed, model.cfg.latent_dim)
    was_training = model.training
    clouds = decode_latents(model, z, device, count=1500)
    model.train(was_training)
    point_sheet(clouds, path)
