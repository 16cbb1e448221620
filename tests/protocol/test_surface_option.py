"""The `surface` and `face_budget` params over a real `python -m backend serve` with a patch model."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import numpy as np
import pytest

from backend.limits import DEFAULT_FACE_BUDGET, MAX_FACE_BUDGET, MIN_FACE_BUDGET
from backend.serving.protocol import INVALID_PARAMS
from backend.surface import is_closed_manifold

from .harness import HANG_GUARD_S, PYTHON, REPO
from .test_methods import CUBE_FACES, CUBE_VERTS


@pytest.fixture(scope="module")
def patch_client(client_module: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server with the add-on tests' cube-of-patches model loaded (eight open, overlapping squares)."""
    from backend.checkpoints import save_model
    from tests.addon.make_tiny_model import cube_patches_model

    folder = tmp_path_factory.mktemp("patch_models") / "cube"
    save_model(folder, cube_patches_model(), meta={"name": "cube"})
    client = client_module.BackendClient(PYTHON, REPO, args=["--device", "cpu", "--model", str(folder)],
                                         log_path=tmp_path_factory.mktemp("logs") / "patch.log")
    client.start(timeout=HANG_GUARD_S)
    yield client
    client.stop()


def closed(wire_module: ModuleType, mesh: dict[str, Any], budget: int = DEFAULT_FACE_BUDGET) -> np.ndarray:
    """The mesh's vertices, after checking it is a closed surface within `budget` faces."""
    vertices, faces = wire_module.decode_mesh(mesh)
    assert mesh["surface"] == "closed" and mesh["pieces_dropped"] == 0
    assert is_closed_manifold(faces) and 0 < len(faces) <= budget
    return vertices


def test_patch_model_answers_closed_meshes_by_default(patch_client: Any, wire_module: ModuleType) -> None:
    (mesh,) = patch_client.call("sample", {"count": 1, "temperature": 0.0, "resolution": 800})["meshes"]
    (patches,) = patch_client.call("sample", {"count": 1, "temperature": 0.0, "resolution": 800,
                                              "surface": "patches"})["meshes"]
    # the same shape: as wide as its patches, give or take the closed surface's offset (a voxel)
    size = np.ptp(wire_module.decode_mesh(patches)[0], axis=0)
    assert np.allclose(np.ptp(closed(wire_module, mesh), axis=0), size, atol=0.05 * size.max())


def test_patches_keep_the_template_mesh(patch_client: Any, wire_module: ModuleType) -> None:
    (mesh,) = patch_client.call("sample", {"count": 1, "temperature": 0.0, "resolution": 800,
                                           "surface": "patches"})["meshes"]
    vertices, faces = wire_module.decode_mesh(mesh)
    assert mesh["surface"] == "patches" and vertices.shape == (800, 3) and len(faces) == 8 * 2 * 9 * 9


def test_every_method_takes_the_option(patch_client: Any, wire_module: ModuleType) -> None:
    cube = wire_module.encode_mesh(CUBE_VERTS, CUBE_FACES)
    params = {"resolution": 800, "surface": "closed", "face_budget": 1000}
    result = patch_client.call("reconstruct", {"mesh": cube, **params})
    centre = CUBE_VERTS.mean(axis=0)
    assert np.linalg.norm(closed(wire_module, result["mesh"], 1000).mean(axis=0) - centre) < 1.0
    steps = patch_client.call("interpolate", {"mesh_a": cube, "mesh_b": cube, "steps": 2, **params})["meshes"]
    variants = patch_client.call("variations", {"mesh": cube, "count": 2, **params})["meshes"]
    for mesh in steps + variants:
        closed(wire_module, mesh, 1000)


@pytest.mark.parametrize("bad", [0, -1, MIN_FACE_BUDGET - 1, MAX_FACE_BUDGET + 1, 10**15, 1.5, "2000", True])
def test_bad_face_budget_is_invalid_params_naming_it(patch_client: Any, client_module: ModuleType,
                                                     bad: object) -> None:
    with pytest.raises(client_module.BackendError) as info:
        patch_client.call("sample", {"count": 1, "resolution": 100, "face_budget": bad})
    assert info.value.code == INVALID_PARAMS and "param 'face_budget'" in str(info.value)
    assert patch_client.call("handshake")["model"]["name"] == "cube"  # still serving


def test_bad_surface_is_invalid_params_naming_it(patch_client: Any, client_module: ModuleType) -> None:
    with pytest.raises(client_module.BackendError) as info:
        patch_client.call("sample", {"count": 1, "surface": "solid"})
    assert info.value.code == INVALID_PARAMS and "param 'surface'" in str(info.value)


def test_sphere_model_default_is_its_template_mesh(model_client: Any, wire_module: ModuleType,
                                                   tiny_model: Path) -> None:
    (mesh,) = model_client.call("sample", {"count": 1, "resolution": 162})["meshes"]
    assert mesh["surface"] == "patches" and wire_module.decode_mesh(mesh)[0].shape == (162, 3)
