"""ModelService on tiny random models: loading, seeded sampling, resolution, frames (its params arrive checked:
tests/protocol/test_registry.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.checkpoints import CONFIG_FILE, load_model, save_model
from backend.data.meshio import Mesh
from backend.errors import CheckpointError, ConfigError
from backend.serving.service import ModelService, NoModelError
from backend.surface import is_closed_manifold


def _box(extents=(1.0, 2.0, 3.0)) -> Mesh:
    tm = trimesh.creation.box(extents=extents)
    return Mesh(np.asarray(tm.vertices), np.asarray(tm.faces))


def _cylinder() -> Mesh:
    tm = trimesh.creation.cylinder(radius=0.5, height=2.0, sections=24)
    return Mesh(np.asarray(tm.vertices), np.asarray(tm.faces))


def _moved(mesh: Mesh, scale: float, offset: np.ndarray) -> Mesh:
    return Mesh(mesh.vertices * scale + offset, mesh.faces)


def _bbox_centre(vertices: np.ndarray) -> np.ndarray:
    return (vertices.min(axis=0) + vertices.max(axis=0)) / 2


def test_load_returns_info(tiny_model_dir: Path, tiny_prior_model_dir: Path) -> None:
    svc = ModelService("cpu")
    assert svc.device == "cpu" and svc.info is None
    info = svc.load(tiny_model_dir)
    assert info["name"] == "tiny" and info["path"] == str(tiny_model_dir)
    assert info["config"]["latent_dim"] == 16 and info["has_prior"] is False
    assert info["default_prior"] == "normal"
    info = svc.load(tiny_prior_model_dir)
    assert info["name"] == "tiny_prior" and info["has_prior"] is True and info["default_prior"] == "gmm"
    assert svc.info == info


def test_failed_load_keeps_the_previous_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    svc = ModelService("cpu")
    svc.load(tiny_model_dir)
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    (broken / CONFIG_FILE).write_text("{")
    with pytest.raises(CheckpointError, match=str(broken)):
        svc.load(broken)
    assert svc.info is not None and svc.info["name"] == "tiny"
    assert len(svc.sample(1, resolution=42)) == 1


def test_sample_is_seeded(service: ModelService) -> None:
    a = service.sample(3, seed=5, resolution=642)
    b = service.sample(3, seed=5, resolution=642)
    c = service.sample(3, seed=6, resolution=642)
    assert len(a) == 3
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.vertices, y.vertices)
        np.testing.assert_array_equal(x.faces, y.faces)
    assert not np.allclose(a[0].vertices, c[0].vertices)
    assert not np.allclose(a[0].vertices, a[1].vertices)


@pytest.mark.parametrize("resolution", [642, 2562])
def test_sample_resolution(service: ModelService, resolution: int) -> None:
    (mesh,) = service.sample(1, seed=0, resolution=resolution)
    assert mesh.vertices.shape == (resolution, 3) and mesh.vertices.dtype == np.float64
    assert mesh.faces.shape == (2 * resolution - 4, 3)
    assert mesh.faces.min() == 0 and mesh.faces.max() == resolution - 1
    assert np.isfinite(mesh.vertices).all()


def test_sample_same_latent_at_two_resolutions_is_the_same_surface(service: ModelService) -> None:
    coarse, fine = service.sample(1, seed=2, resolution=642)[0], service.sample(1, seed=2, resolution=2562)[0]
    # The coarse icosphere's vertices are the first vertices of the finer one (subdivision keeps them).
    np.testing.assert_allclose(fine.vertices[:642], coarse.vertices, rtol=1e-4, atol=1e-5)


def test_temperature_zero_normal_prior_gives_one_shape(service: ModelService) -> None:
    meshes = service.sample(3, seed=1, temperature=0.0, resolution=42)
    np.testing.assert_allclose(meshes[0].vertices, meshes[2].vertices, atol=1e-6)


def test_gmm_prior(prior_service: ModelService, service: ModelService) -> None:
    auto = prior_service.sample(2, seed=4, resolution=42)
    gmm = prior_service.sample(2, seed=4, resolution=42, prior="gmm")
    normal = prior_service.sample(2, seed=4, resolution=42, prior="normal")
    np.testing.assert_array_equal(auto[0].vertices, gmm[0].vertices)
    assert not np.allclose(gmm[0].vertices, normal[0].vertices)
    with pytest.raises(ConfigError, match="no fitted prior"):
        service.sample(1, prior="gmm")
    with pytest.raises(ConfigError, match="prior"):
        service.sample(1, prior="uniform")


def test_squares_model_resolution(tmp_path: Path, make_tiny_model) -> None:
    folder = save_model(tmp_path / "sq", make_tiny_model(0, template="squares", patches=4))
    svc = ModelService("cpu")
    svc.load(folder)
    (mesh,) = svc.sample(1, resolution=400, surface="patches")
    assert mesh.vertices.shape == (400, 3) and mesh.surface == "patches"
    assert mesh.faces.max() == 399 and len(mesh.faces) == 4 * 2 * 9 * 9


def test_patch_model_results_are_closed_meshes_by_default(tmp_path: Path, make_tiny_model) -> None:
    """Every generation method of a patch model returns one closed mesh per shape within the face budget,
    in the caller's frame; a sphere model's default stays its template mesh."""
    svc = ModelService("cpu")
    svc.load(save_model(tmp_path / "sq", make_tiny_model(0, template="squares", patches=4)))
    offset, scale = np.array([100.0, -50.0, 20.0]), 10.0
    box = _moved(_box(), scale, offset)
    budget = 1500
    results = [*svc.sample(2, resolution=400, face_budget=budget),
               svc.reconstruct(box, resolution=400, face_budget=budget)[0],
               *svc.interpolate(_box(), box, steps=2, resolution=400, face_budget=budget),
               *svc.variations(box, count=2, resolution=400, face_budget=budget)]
    for mesh in results:
        assert mesh.surface == "closed" and is_closed_manifold(mesh.faces) and len(mesh.faces) <= budget
    for mesh in results[2:3] + results[4:]:  # those made in the box's frame stand within its extent
        assert np.linalg.norm(_bbox_centre(mesh.vertices) - offset) < scale * np.linalg.norm([0.5, 1, 1.5])
    with pytest.raises(ConfigError, match="face_budget must be an integer between"):
        svc.sample(1, resolution=400, face_budget=0)
    with pytest.raises(ConfigError, match="surface must be one of auto, closed, patches"):
        svc.sample(1, resolution=400, surface="solid")


def test_sphere_model_default_is_its_template_mesh(service: ModelService) -> None:
    (mesh,) = service.sample(1, resolution=642)
    assert mesh.surface == "patches" and mesh.vertices.shape == (642, 3)
    (closed,) = service.sample(1, resolution=642, surface="closed", face_budget=800)
    assert closed.surface == "closed" and is_closed_manifold(closed.faces) and len(closed.faces) <= 800


def test_reconstruct_returns_mesh_in_input_frame(service: ModelService) -> None:
    box = _box()
    offset, scale = np.array([1000.0, -500.0, 250.0]), 40.0
    near, cd_near = service.reconstruct(box, resolution=642)
    far, cd_far = service.reconstruct(_moved(box, scale, offset), resolution=642)
    assert near.vertices.shape == (642, 3) and far.vertices.shape == (642, 3)
    # The output sits where the input is: within the input's own extent of its centre.
    radius = scale * np.linalg.norm([0.5, 1.0, 1.5])
    assert np.linalg.norm(_bbox_centre(far.vertices) - (offset + scale * _bbox_centre(box.vertices))) < radius
    assert np.ptp(far.vertices, axis=0).max() < 2.5 * radius
    # The network sees the same unit-ball shape, so the answer is the same shape moved and scaled.
    np.testing.assert_allclose(far.vertices, near.vertices * scale + offset, atol=1e-3 * scale)
    assert np.isfinite(cd_near) and cd_near > 0
    assert cd_far == pytest.approx(cd_near, rel=1e-3)


def test_reconstruct_is_deterministic(service: ModelService) -> None:
    a, cd_a = service.reconstruct(_cylinder(), resolution=162)
    b, cd_b = service.reconstruct(_cylinder(), resolution=162)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert cd_a == cd_b


def test_interpolate_endpoints(service: ModelService) -> None:
    a = _moved(_box(), 3.0, np.array([10.0, 0.0, 0.0]))
    b = _moved(_cylinder(), 0.5, np.array([-10.0, 5.0, 0.0]))
    steps = service.interpolate(a, b, steps=4, resolution=162)
    assert len(steps) == 4
    assert all(m.vertices.shape == (162, 3) for m in steps)
    rec_a, _ = service.reconstruct(a, resolution=162)
    rec_b, _ = service.reconstruct(b, resolution=162)
    np.testing.assert_allclose(steps[0].vertices, rec_a.vertices, atol=1e-4)
    np.testing.assert_allclose(steps[-1].vertices, rec_b.vertices, atol=1e-4)
    # Intermediate frames move from a's place to b's.
    centres = [_bbox_centre(m.vertices)[0] for m in steps]
    assert centres[0] > centres[1] > centres[2] > centres[3]


def test_variations(prior_service: ModelService) -> None:
    mesh = _moved(_box(), 5.0, np.array([0.0, 0.0, 100.0]))
    vs = prior_service.variations(mesh, count=3, spread=0.5, seed=1, resolution=162)
    assert len(vs) == 3 and all(v.vertices.shape == (162, 3) for v in vs)
    again = prior_service.variations(mesh, count=3, spread=0.5, seed=1, resolution=162)
    np.testing.assert_array_equal(vs[1].vertices, again[1].vertices)
    assert not np.allclose(vs[0].vertices, vs[1].vertices)
    still = prior_service.variations(mesh, count=2, spread=0.0, seed=1, resolution=162)
    rec, _ = prior_service.reconstruct(mesh, resolution=162)
    np.testing.assert_allclose(still[0].vertices, rec.vertices, atol=1e-4)
    np.testing.assert_allclose(still[1].vertices, rec.vertices, atol=1e-4)


def test_no_model_errors() -> None:
    svc = ModelService("cpu")
    for call in (lambda: svc.sample(1), lambda: svc.reconstruct(_box()),
                 lambda: svc.interpolate(_box(), _box()), lambda: svc.variations(_box())):
        with pytest.raises(NoModelError, match="no model is loaded"):
            call()


def test_unload(tiny_model_dir: Path) -> None:
    svc = ModelService("cpu")
    svc.load(tiny_model_dir)
    assert svc.unload() is True
    assert svc.info is None
    with pytest.raises(NoModelError):
        svc.sample(1)
    assert svc.unload() is False
    svc.load(tiny_model_dir)
    assert len(svc.sample(1, resolution=42)) == 1


def test_list_models(tiny_model_dir: Path, tiny_prior_model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(tiny_model_dir, root / "alpha")
    shutil.copytree(tiny_prior_model_dir, root / "beta")
    (root / "not_a_model").mkdir()
    (root / "not_a_model" / "notes.txt").write_text("hi")
    found = ModelService.list_models([root, tmp_path / "missing", tiny_model_dir, root / "alpha"])
    assert [Path(m["path"]).name for m in found] == ["alpha", "beta", tiny_model_dir.name]
    # Named as the add-on names them: the name recorded in the model's metadata, else the folder's.
    assert [m["name"] for m in found] == [load_model(m["path"]).meta.get("name") or Path(m["path"]).name
                                          for m in found]
    assert all(Path(m["path"]).is_absolute() and (Path(m["path"]) / CONFIG_FILE).is_file() for m in found)
    assert ModelService.list_models([]) == []
