"""The sample method's `size` option through BackendClient against a real `python -m backend serve`: real
size for a model that records sizes, unit size on request or for a model without them, bad values refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import numpy as np
import pytest

from backend.serving.protocol import INVALID_PARAMS

from .harness import HANG_GUARD_S, PYTHON, REPO
from .test_methods import decoded

SIZE = [3.0, 2.0, 6.0]
# The wire carries float32 vertices: relative rounding 2**-24 per coordinate, far below 1e-6.
RTOL = 1e-6


@pytest.fixture(scope="module")
def sized_client(client_module: ModuleType, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Any]:
    """A server with a copy of the tiny model whose config.json records an overall size."""
    folder = tmp_path_factory.mktemp("sized") / "sized"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["meta"]["sizes"] = {"overall": SIZE, "labels": {}, "shapes": 4}
    (folder / "config.json").write_text(json.dumps(config))
    client = client_module.BackendClient(PYTHON, REPO, args=["--device", "cpu", "--model", str(folder)],
                                         log_path=folder.parent / "client.log")
    client.start(timeout=HANG_GUARD_S)
    yield client
    client.stop()


def test_samples_come_at_the_recorded_size_on_the_floor(sized_client: Any, wire_module: ModuleType) -> None:
    assert sized_client.handshake["model"]["sizes"]["overall"] == SIZE
    reply = sized_client.call("sample", {"count": 2, "seed": 1, "resolution": 162})
    assert reply["size"] == "real"
    for mesh in reply["meshes"]:
        vertices = decoded(wire_module, mesh)[0].astype(np.float64)
        assert float(np.linalg.norm(np.ptp(vertices, axis=0))) == pytest.approx(float(np.linalg.norm(SIZE)),
                                                                                 rel=RTOL)
        assert vertices[:, 2].min() == 0.0


def test_unit_size_on_request(sized_client: Any, wire_module: ModuleType) -> None:
    reply = sized_client.call("sample", {"count": 1, "seed": 1, "resolution": 162, "size": "unit"})
    assert reply["size"] == "unit"
    vertices = decoded(wire_module, reply["meshes"][0])[0]
    assert float(np.linalg.norm(np.ptp(vertices, axis=0))) < float(np.linalg.norm(SIZE)) / 2, "the network's frame"


def test_a_model_without_sizes_answers_unit(model_client: Any, wire_module: ModuleType) -> None:
    real = model_client.call("sample", {"count": 1, "seed": 2, "resolution": 162})
    unit = model_client.call("sample", {"count": 1, "seed": 2, "resolution": 162, "size": "unit"})
    assert real["size"] == unit["size"] == "unit" and real["meshes"] == unit["meshes"]


@pytest.mark.parametrize("size", ["huge", 1])
def test_a_bad_size_is_refused_and_the_server_keeps_serving(sized_client: Any, client_module: ModuleType,
                                                            size: Any) -> None:
    with pytest.raises(client_module.BackendError) as info:
        sized_client.call("sample", {"count": 1, "size": size})
    assert info.value.code == INVALID_PARAMS and "size" in str(info.value)
    assert sized_client.call("sample", {"count": 1, "resolution": 42})["size"] == "real"
