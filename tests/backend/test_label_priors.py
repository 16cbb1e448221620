"""Per-label priors: fitted per family, stored in the model folder, used by sample(label=...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.checkpoints import load_model, save_model
from backend.errors import CheckpointError, ConfigError
from backend.prior import fit_label_priors
from backend.serving.service import ModelService


def _codes(dim: int = 16) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    a = rng.normal(-3.0, 0.1, (20, dim))
    b = rng.normal(+3.0, 0.1, (20, dim))
    few = rng.normal(0.0, 0.1, (3, dim))
    return np.concatenate([a, b, few]), ["sword"] * 20 + ["mug"] * 20 + ["lamp"] * 3


def test_fit_label_priors_skips_labels_with_too_few_codes() -> None:
    codes, labels = _codes()
    priors = fit_label_priors(codes, labels, components=2, seed=0)
    assert sorted(priors) == ["mug", "sword"]
    assert priors["sword"].sample(50, seed=1, temperature=0.0).mean() == pytest.approx(-3.0, abs=0.1)
    assert priors["mug"].sample(50, seed=1, temperature=0.0).mean() == pytest.approx(3.0, abs=0.1)


def test_vae_label_priors_are_each_labels_share_of_the_posterior() -> None:
    codes, labels = _codes()
    logvar = np.full_like(codes, np.log(0.04))
    priors = fit_label_priors(codes, labels, logvar=logvar, spread=2.0)
    assert sorted(priors) == ["mug", "sword"]
    np.testing.assert_array_equal(priors["sword"].means, codes[:20])
    np.testing.assert_allclose(priors["mug"].chol, 0.4)
    assert priors["mug"].diagonal and priors["mug"].components == 20


@pytest.fixture
def labelled_model_dir(tmp_path: Path, make_tiny_model) -> Path:
    codes, labels = _codes()
    priors = fit_label_priors(codes, labels, components=2, seed=0)
    return save_model(tmp_path / "labelled", make_tiny_model(), label_priors=priors)


def test_label_priors_round_trip(labelled_model_dir: Path) -> None:
    loaded = load_model(labelled_model_dir)
    assert sorted(loaded.label_priors) == ["mug", "sword"]
    codes, labels = _codes()
    again = fit_label_priors(codes, labels, components=2, seed=0)
    for label, prior in again.items():
        np.testing.assert_array_equal(loaded.label_priors[label].means, prior.means)
        np.testing.assert_array_equal(loaded.label_priors[label].chol, prior.chol)


def test_sample_by_label_is_seeded_and_differs_between_labels(labelled_model_dir: Path) -> None:
    service = ModelService("cpu")
    info = service.load(labelled_model_dir)
    assert info["labels"] == ["mug", "sword"]
    swords = service.sample(2, seed=3, resolution=162, label="sword")
    again = service.sample(2, seed=3, resolution=162, label="sword")
    mugs = service.sample(2, seed=3, resolution=162, label="mug")
    np.testing.assert_array_equal(swords[0].vertices, again[0].vertices)
    assert not np.allclose(swords[0].vertices, mugs[0].vertices)


def test_unknown_label_names_the_known_ones(labelled_model_dir: Path) -> None:
    service = ModelService("cpu")
    service.load(labelled_model_dir)
    with pytest.raises(ConfigError, match=r"label 'chair' .*\(mug, sword\)"):
        service.sample(1, label="chair")


def test_labels_field_must_list_strings(labelled_model_dir: Path) -> None:
    import json

    cfg_path = labelled_model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["labels"] = "sword"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(labelled_model_dir)
