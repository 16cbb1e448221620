"""Fixtures for protocol tests: real server processes (raw pipes and BackendClient) and a tiny model."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

from .harness import HANG_GUARD_S, PYTHON, REPO, SMALL_MAX_BYTES, RawServer, load_addon_module


@pytest.fixture(scope="session")
def client_module() -> ModuleType:
    return load_addon_module("client")


@pytest.fixture(scope="session")
def wire_module() -> ModuleType:
    return load_addon_module("wire")


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one tiny untrained model folder, `tiny`."""
    import torch

    from backend.checkpoints import save_model
    from backend.model import AtlasVAE, ModelConfig

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    cfg = ModelConfig(latent_dim=8, encoder_widths=(16, 32), decoder_width=32, decoder_layers=1)
    save_model(root / "tiny", AtlasVAE(cfg).eval(), meta={"name": "tiny"})
    return root


@pytest.fixture(scope="session")
def tiny_model(models_root: Path) -> Path:
    return models_root / "tiny"


@pytest.fixture(scope="session")
def bare_server() -> Iterator[RawServer]:
    """One server with no model and a 1 MiB line limit, shared by the error and fuzz tests."""
    server = RawServer("--max-message-bytes", str(SMALL_MAX_BYTES))
    yield server
    server.close()


@pytest.fixture(scope="session")
def model_client(client_module: ModuleType, models_root: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Any]:
    """A BackendClient running `python -m backend serve` with the tiny model loaded."""
    log = tmp_path_factory.mktemp("logs") / "client.log"
    client = client_module.BackendClient(PYTHON, REPO, args=["--device", "cpu", "--models-dir", str(models_root),
                                                             "--model", str(models_root / "tiny")],
                                         log_path=log)
    client.start(timeout=HANG_GUARD_S)
    yield client
    client.stop()
