"""evaluate_model on tiny models: the documented report keys, finite metrics in their ranges, determinism."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from backend.errors import CheckpointError, ConfigError
from backend.evaluate import evaluate_model

GEN_KEYS = {"mmd_cd", "cov_cd", "nna_cd"}


def _check_group(group: dict, priors: set[str], shapes: int) -> None:
    assert group["shapes"] == shapes
    assert math.isfinite(group["chamfer_x1e3"]) and group["chamfer_x1e3"] > 0
    assert 0.0 <= group["fscore"] <= 1.0
    assert {k for k in group if k.startswith("generation_")} == {f"generation_{p}" for p in priors}
    for prior in priors:
        gen = group[f"generation_{prior}"]
        assert GEN_KEYS <= set(gen)
        assert all(math.isfinite(gen[k]) for k in GEN_KEYS)
        assert gen["mmd_cd"] > 0 and 0.0 <= gen["cov_cd"] <= 1.0 and 0.0 <= gen["nna_cd"] <= 1.0


def test_evaluate_model_without_prior(tiny_model_dir: Path) -> None:
    report = evaluate_model(tiny_model_dir, procedural="sword,mug:3", seed=2, device="cpu")
    assert {"model", "name", "device", "references", "default_prior", "groups", "all"} <= set(report)
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
    _check_group(report["groups"]["sword"], {"gmm", "normal"}, 2)


def test_evaluate_errors_name_the_input(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(CheckpointError, match=str(tmp_path / "nope")):
        evaluate_model(tmp_path / "nope", procedural="sword:2", device="cpu")
    with pytest.raises(ConfigError, match="dragon"):
        evaluate_model(tiny_model_dir, procedural="dragon:2", device="cpu")
