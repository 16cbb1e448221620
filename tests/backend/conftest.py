"""Shared tiny models for the backend tests: random-weight model folders and one short procedural run.

Everything here is session-scoped and small (16-dim latent, 32-wide decoder) so the whole backend suite
stays fast on a busy two-core machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

TINY_ARCH: dict[str, Any] = dict(latent_dim=16, encoder_widths=(16, 32), decoder_width=32, decoder_layers=1)
TINY_TRAIN: dict[str, Any] = dict(procedural="sword,mug:6", epochs=2, batch_size=4, points=128, sheet_every=0,
                                  device="cpu", prior_components=2, **TINY_ARCH)


def tiny_model(seed: int = 0, **overrides: Any):  # -> AtlasVAE
    """A random-weight tiny AtlasVAE with non-trivial batch-norm statistics, in eval mode."""
    from backend.model import AtlasVAE, ModelConfig
    from backend.templates import random_points

    torch.manual_seed(seed)
    model = AtlasVAE(ModelConfig(**{**TINY_ARCH, **overrides}))
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 64, 3) * 2 - 1, random_points(model.cfg.template, model.cfg.patches, 64))
    return model.eval()


def tiny_prior(seed: int = 0):  # -> GaussianMixturePrior
    """A 2-component mixture fitted to two clusters of 16-dim codes."""
    from backend.prior import fit_gmm

    rng = np.random.default_rng(seed)
    codes = np.concatenate([rng.normal(-2.0, 0.3, (20, 16)), rng.normal(2.0, 0.3, (20, 16))])
    return fit_gmm(codes, components=2, seed=seed)


def tiny_train_config(out: Path, **overrides: Any):  # -> TrainConfig
    """A two-epoch procedural TrainConfig for the tiny architecture, writing to `out`."""
    from backend.training.config import TrainConfig

    return TrainConfig.from_flat({"out": str(out), **TINY_TRAIN, **overrides})


@pytest.fixture(scope="session")
def make_train_config():
    """The tiny_train_config factory."""
    return tiny_train_config


@pytest.fixture(scope="session")
def make_tiny_model():
    """The tiny_model factory, for tests that need fresh models."""
    return tiny_model


@pytest.fixture(scope="session")
def make_tiny_prior():
    """The tiny_prior factory, for tests that need a fitted prior."""
    return tiny_prior


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with random tiny weights and no fitted prior."""
    from backend.checkpoints import save_model

    return save_model(tmp_path_factory.mktemp("models") / "tiny", tiny_model(0), meta={"name": "tiny"})


@pytest.fixture(scope="session")
def tiny_prior_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with random tiny weights and a fitted Gaussian-mixture prior."""
    from backend.checkpoints import save_model

    return save_model(tmp_path_factory.mktemp("models") / "tiny_prior", tiny_model(1), prior=tiny_prior(),
                      meta={"name": "tiny_prior", "default_prior": "gmm"})


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One finished two-epoch procedural training run: {"out": Path, "summary": dict, "events": list}."""
    from backend.training.loop import run

    out = tmp_path_factory.mktemp("runs") / "tiny_run"
    events: list[dict] = []
    summary = run(tiny_train_config(out, sheet_every=1), progress=events.append)
    return {"out": out, "summary": summary, "events": events}


@pytest.fixture(scope="module")
def service(tiny_model_dir: Path) -> Any:  # -> ModelService
    """A service holding the tiny model (one per test module)."""
    from backend.serving.service import ModelService

    svc = ModelService("cpu")
    svc.load(tiny_model_dir)
    return svc


@pytest.fixture(scope="module")
def prior_service(tiny_prior_model_dir: Path) -> Any:  # -> ModelService
    """A service holding the tiny model with a fitted mixture prior (one per test module)."""
    from backend.serving.service import ModelService

    svc = ModelService("cpu")
    svc.load(tiny_prior_model_dir)
    return svc


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A mug mesh file and a two-family data folder (two swords, two mugs), for command-line input tests."""
    from backend.data.meshio import save_mesh
    from backend.data.procedural import generate, write_dataset

    root = tmp_path_factory.mktemp("inputs")
    save_mesh(root / "mug.obj", generate("mug", 0))
    write_dataset(root / "data", ["sword", "mug"], per_family=2, seed=0)
    return {"mesh": root / "mug.obj", "data": root / "data"}


@pytest.fixture(scope="session")
def mug_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A procedural mug saved as OBJ, moved and scaled off the unit ball (a user's mesh for CLI commands)."""
    from backend.data.meshio import save_mesh
    from backend.data.procedural import generate

    path = tmp_path_factory.mktemp("meshes") / "mug.obj"
    mesh = generate("mug", 0)
    save_mesh(path, type(mesh)(mesh.vertices * 3.0 + np.array([5.0, -2.0, 8.0]), mesh.faces))
    return path
