"""evaluate_model on tiny models: the documented report keys, finite metrics in their ranges, determinism."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from backend.errors import CheckpointError, ConfigError
from backend.evaluate import evaluate_model

GEN_KEYS = {"mmd_cd", "cov_cd", "nna_cd", "precision", "recall", "pieces_share"}
NEAREST_KEYS = {"sample_to_train_x1e3", "heldout_to_train_x1e3", "ratio"}


def _check_group(group: dict, priors: set[str], shapes: int, nearest: bool = False) -> None:
    assert group["shapes"] == shapes
    assert math.isfinite(group["chamfer_x1e3"]) and group["chamfer_x1e3"] > 0
    assert 0.0 <= group["fscore"] <= 1.0
    assert 0.0 <= group["normal_consistency"] <= 1.0
    assert {k for k in group if k.startswith("generation_")} == {f"generation_{p}" for p in priors}
    for prior in priors:
        gen = group[f"generation_{prior}"]
        assert GEN_KEYS <= set(gen)
        assert all(math.isfinite(gen[k]) for k in GEN_KEYS)
        assert gen["mmd_cd"] > 0 and 0.0 <= gen["cov_cd"] <= 1.0 and 0.0 <= gen["nna_cd"] <= 1.0
        assert all(0.0 <= gen[k] <= 1.0 for k in ("precision", "recall", "pieces_share"))
        if nearest:
            assert set(gen["nearest_train"]) == NEAREST_KEYS
            assert all(math.isfinite(v) and v > 0 for v in gen["nearest_train"].values())
        else:
            assert "nearest_train" not in gen


def test_evaluate_model_without_prior(tiny_model_dir: Path) -> None:
    report = evaluate_model(tiny_model_dir, procedural="sword,mug:3", seed=2, device="cpu")
    assert {"model", "name", "device", "references", "default_prior", "train_data", "groups", "all"} <= set(report)
    assert report["train_data"]["source"] is None and "--train-data" in report["train_data"]["note"]
    assert report["name"] == "tiny" and report["device"] == "cpu" and report["default_prior"] == "normal"
    assert set(report["groups"]) == {"sword", "mug"}
    for group in report["groups"].values():
        _check_group(group, {"normal"}, 3)
    _check_group(report["all"], {"normal"}, 6)


def test_evaluate_model_with_prior_and_sample_count(tiny_prior_model_dir: Path) -> None:
    report = evaluate_model(tiny_prior_model_dir, procedural="table:4", seed=1, samples=5, device="cpu")
    assert report["default_prior"] == "gmm"
    assert set(report["groups"]) == {"table"} and "all" not in report
    _check_group(report["groups"]["table"], {"gmm", "normal"}, 4)
    again = evaluate_model(tiny_prior_model_dir, procedural="table:4", seed=1, samples=5, device="cpu")
    assert again == report


def test_default_prior_matches_the_service_when_meta_is_silent(tmp_path: Path, make_tiny_model,
                                                               make_tiny_prior) -> None:
    from backend.checkpoints import save_model
    from backend.serving.service import ModelService

    folder = save_model(tmp_path / "m", make_tiny_model(2), prior=make_tiny_prior())
    report = evaluate_model(folder, procedural="mug:2", seed=1, device="cpu")
    service = ModelService("cpu")
    assert report["default_prior"] == service.load(folder)["default_prior"] == "gmm"


def test_evaluate_trained_model(trained_run: dict) -> None:
    report = evaluate_model(trained_run["out"], procedural="sword:2", seed=5, device="cpu")
    assert report["train_data"]["source"] == "recorded"
    assert report["train_data"]["path"].startswith("procedural ") and report["train_data"]["shapes"] > 0
    _check_group(report["groups"]["sword"], {"gmm", "normal"}, 2, nearest=True)
    skipped = evaluate_model(trained_run["out"], procedural="sword:2", seed=5, device="cpu", nearest=False)
    assert skipped["train_data"]["source"] is None
    _check_group(skipped["groups"]["sword"], {"gmm", "normal"}, 2)


def _mesh_folder(root: Path, stretch: float = 1.0) -> Path:
    """Two labels of three small meshes each (boxes and spheres of different proportions)."""
    import trimesh

    from backend.data.meshio import Mesh, save_mesh

    for i in range(3):
        for label, shape in (("box", trimesh.creation.box(extents=(1.0, 1.0 + i, 0.5))),
                             ("ball", trimesh.creation.icosphere(subdivisions=2, radius=1.0 + i))):
            (root / label).mkdir(parents=True, exist_ok=True)
            shape.apply_scale([stretch, 1.0, 1.0 + 0.5 * i])
            save_mesh(root / label / f"{i}.obj", Mesh(shape.vertices, shape.faces))
    return root


def test_evaluate_on_mesh_folders_with_training_data(tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("ATLASVAE_CACHE", str(tmp_path / "cache"))
    refs, train = _mesh_folder(tmp_path / "refs"), _mesh_folder(tmp_path / "train", stretch=1.2)
    report = evaluate_model(tiny_model_dir, data=str(refs), train_data=str(train), seed=3, device="cpu")
    assert report["train_data"] == {"source": "--train-data", "path": str(train), "shapes": 6}
    assert set(report["groups"]) == {"box", "ball"}
    for group in report["groups"].values():
        _check_group(group, {"normal"}, 3, nearest=True)
    _check_group(report["all"], {"normal"}, 6, nearest=True)
    # each reference has a slightly stretched twin among the training meshes; random weights' samples do not
    held = report["all"]["generation_normal"]["nearest_train"]["heldout_to_train_x1e3"]
    assert held < report["all"]["generation_normal"]["nearest_train"]["sample_to_train_x1e3"]


def test_max_per_label_caps_each_label(tiny_model_dir: Path) -> None:
    report = evaluate_model(tiny_model_dir, procedural="sword,mug:3", seed=2,
                            device="cpu", max_per_label=2)
    assert report["reference_shapes"] == 4 and report["max_per_label"] == 2
    for group in report["groups"].values():
        _check_group(group, {"normal"}, 2)
    with pytest.raises(ConfigError, match="max_per_label"):
        evaluate_model(tiny_model_dir, procedural="sword:2", device="cpu", max_per_label=-1)


def test_evaluate_errors_name_the_input(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(CheckpointError, match=str(tmp_path / "nope")):
        evaluate_model(tmp_path / "nope", procedural="sword:2", device="cpu")
    with pytest.raises(ConfigError, match="dragon"):
        evaluate_model(tiny_model_dir, procedural="dragon:2", device="cpu")
