"""Every method through BackendClient against a real `python -m backend serve` with a tiny model."""

from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import backend
from backend.serving.protocol import INVALID_PARAMS, NO_MODEL

CUBE_VERTS = np.array([[x, y, z] for x in (0, 2) for y in (0, 1) for z in (0, 1)], dtype=np.float32) + 5.0
CUBE_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                       [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype=np.int32)


def decoded(wire_module: ModuleType, mesh: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces = wire_module.decode_mesh(mesh)
    assert np.isfinite(vertices).all()
    assert faces.min() >= 0 and faces.max() < len(vertices)
    return vertices, faces


def test_handshake_fields(model_client: Any, tiny_model: Path) -> None:
    info = model_client.handshake
    assert info["protocol_version"] == backend.PROTOCOL_VERSION
    assert info["backend_version"] == backend.__version__
    assert info["device"] == "cpu" and info["device_name"] == "cpu"
    assert info["model"]["name"] == "tiny" and Path(info["model"]["path"]) == tiny_model
    assert {"name": "tiny", "path": str(tiny_model.resolve())} in info["models"]
    assert info["pid"] == model_client.pid
    assert info["warnings"] == []
    assert model_client.state == "ready"


def test_list_models(model_client: Any, tiny_model: Path) -> None:
    assert model_client.call("list_models") == {"models": [{"name": "tiny", "path": str(tiny_model.resolve())}]}


def test_sample_is_seeded(model_client: Any, wire_module: ModuleType) -> None:
    first = model_client.call("sample", {"count": 2, "seed": 4, "resolution": 162})["meshes"]
    again = model_client.call("sample", {"count": 2, "seed": 4, "resolution": 162})["meshes"]
    other = model_client.call("sample", {"count": 1, "seed": 5, "resolution": 162, "temperature": 0.5})["meshes"]
    assert len(first) == 2 and len(other) == 1
    (v0, f0), (v1, _) = decoded(wire_module, first[0]), decoded(wire_module, first[1])
    assert v0.shape == (162, 3) and f0.shape == (320, 3)
    assert first == again
    assert not np.array_equal(v0, v1)
    assert not np.array_equal(v0, decoded(wire_module, other[0])[0])


def test_reconstruct_returns_mesh_in_input_frame(model_client: Any, wire_module: ModuleType) -> None:
    result = model_client.call("reconstruct", {"mesh": wire_module.encode_mesh(CUBE_VERTS, CUBE_FACES),
                                               "resolution": 42})
    vertices, _ = decoded(wire_module, result["mesh"])
    assert vertices.shape == (42, 3)
    assert isinstance(result["chamfer"], float) and result["chamfer"] >= 0.0
    center = CUBE_VERTS.mean(axis=0)
    assert np.linalg.norm(vertices.mean(axis=0) - center) < np.linalg.norm(center)  # placed near the input


def test_interpolate_and_variations(model_client: Any, wire_module: ModuleType) -> None:
    a = wire_module.encode_mesh(CUBE_VERTS, CUBE_FACES)
    b = wire_module.encode_mesh(CUBE_VERTS * np.array([1, 3, 1], np.float32), CUBE_FACES)
    steps = model_client.call("interpolate", {"mesh_a": a, "mesh_b": b, "steps": 3, "resolution": 42})["meshes"]
    assert len(steps) == 3 and all(decoded(wire_module, m)[0].shape == (42, 3) for m in steps)
    variants = model_client.call("variations", {"mesh": a, "count": 3, "spread": 0.5, "seed": 1,
                                                "resolution": 42})["meshes"]
    assert len(variants) == 3
    assert not np.array_equal(decoded(wire_module, variants[0])[0], decoded(wire_module, variants[1])[0])


def test_errors_raise_backend_error_with_code(model_client: Any, client_module: ModuleType) -> None:
    with pytest.raises(client_module.BackendError) as info:
        model_client.call("sample", {"count": 0})
    assert info.value.code == INVALID_PARAMS and "param 'count'" in str(info.value)
    assert model_client.call("handshake")["model"]["name"] == "tiny"


def test_concurrent_requests_are_routed_by_id(model_client: Any) -> None:
    results: dict[int, Any] = {}

    def worker(seed: int) -> None:
        results[seed] = model_client.call("sample", {"count": 1, "seed": seed, "resolution": 42})

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed, result in results.items():
        assert result == model_client.call("sample", {"count": 1, "seed": seed, "resolution": 42})
    assert len(results) == 6


def test_release_then_load_model(model_client: Any, client_module: ModuleType, tiny_model: Path) -> None:
    released = model_client.call("release")
    assert released["released"] is True
    assert released["rss_before"] > 0 and released["rss_after"] > 0
    assert model_client.call("handshake")["model"] is None
    with pytest.raises(client_module.BackendError) as info:
        model_client.call("sample", {"count": 1})
    assert info.value.code == NO_MODEL
    assert model_client.call("release")["released"] is False
    loaded = model_client.call("load_model", {"path": str(tiny_model)})["model"]
    assert loaded["name"] == "tiny" and loaded["config"]["latent_dim"] == 8
    assert len(model_client.call("sample", {"count": 1, "resolution": 42})["meshes"]) == 1
