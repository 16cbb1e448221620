"""refit-prior: new priors on unchanged weights, never replacing a prior or model without --force."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.checkpoints import CONFIG_FILE, WEIGHTS_FILE, bytes_to_tensors, load_model, save_model
from backend.cli import main
from backend.errors import ConfigError
from backend.prior import fit_gmm
from backend.training.refit import refit_prior


@pytest.fixture()
def old_model(trained_run: dict, tmp_path: Path) -> Path:
    """A copy of the tiny run whose prior is an EM mixture on the means, as models from before the change."""
    folder = tmp_path / "old"
    lm = load_model(shutil.copytree(trained_run["out"], folder))
    em = fit_gmm(np.random.default_rng(0).normal(size=(12, lm.config.latent_dim)), 2)
    recorded = {k: v for k, v in lm.meta["train_config"].items() if k != "prior_spread"}  # older models lack it
    return save_model(folder, lm.model, prior=em, meta={**lm.meta, "train_config": recorded})


def _weights(folder: Path) -> dict:
    tensors = bytes_to_tensors((folder / WEIGHTS_FILE).read_bytes(), folder)
    return {k: v for k, v in tensors.items() if not k.startswith(("prior.", "label_prior."))}


def test_in_place_needs_force_and_keeps_the_weights_bit_exact(old_model: Path) -> None:
    before = (old_model / WEIGHTS_FILE).read_bytes()
    with pytest.raises(ConfigError, match="replaces its current prior.*--force"):
        refit_prior(old_model, device="cpu")
    assert (old_model / WEIGHTS_FILE).read_bytes() == before
    weights = _weights(old_model)
    summary = refit_prior(old_model, device="cpu", force=True, progress=lambda e: None)
    lm = load_model(old_model)
    assert lm.prior.diagonal and lm.prior.components == summary["prior_components"] == lm.meta["train_shapes"]
    assert lm.meta["train_config"]["prior_spread"] == 1.5 and lm.meta["prior_fit"]["shapes"] == len(lm.prior.means)
    assert lm.meta["name"] == "tiny_run"
    after = _weights(old_model)
    assert after.keys() == weights.keys()
    assert all(np.array_equal(after[k].numpy(), weights[k].numpy()) for k in weights)


def test_out_leaves_the_source_untouched_and_spread_scales_the_widths(old_model: Path, tmp_path: Path) -> None:
    before = {f: (old_model / f).read_bytes() for f in (CONFIG_FILE, WEIGHTS_FILE)}
    refit_prior(old_model, tmp_path / "a", device="cpu", progress=lambda e: None)
    refit_prior(old_model, tmp_path / "b", spread=3.0, device="cpu", progress=lambda e: None)
    assert {f: (old_model / f).read_bytes() for f in before} == before
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    np.testing.assert_array_equal(a.prior.means, b.prior.means)
    np.testing.assert_allclose(b.prior.chol, 2.0 * a.prior.chol)
    assert a.name == "a" and b.meta["train_config"]["prior_spread"] == 3.0
    refit_prior(tmp_path / "b", tmp_path / "c", device="cpu", progress=lambda e: None)  # keeps the recorded 3.0
    np.testing.assert_allclose(load_model(tmp_path / "c").prior.chol, b.prior.chol)


def test_another_model_at_out_needs_force(old_model: Path, tmp_path: Path) -> None:
    refit_prior(old_model, tmp_path / "a", device="cpu", progress=lambda e: None)
    weights = (tmp_path / "a" / WEIGHTS_FILE).read_bytes()
    with pytest.raises(ConfigError, match="already holds a model.*--force"):
        refit_prior(old_model, tmp_path / "a", spread=2.0, device="cpu")
    assert (tmp_path / "a" / WEIGHTS_FILE).read_bytes() == weights
    refit_prior(old_model, tmp_path / "a", spread=2.0, device="cpu", force=True, progress=lambda e: None)
    assert load_model(tmp_path / "a").meta["train_config"]["prior_spread"] == 2.0


def test_a_non_empty_foreign_out_folder_is_refused_even_with_force(old_model: Path, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for force in (False, True):
        with pytest.raises(ConfigError, match="mine.*not empty"):
            refit_prior(old_model, tmp_path / "mine", device="cpu", force=force)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="file.*not a folder"):
        refit_prior(old_model, tmp_path / "file", device="cpu", force=True)


def test_a_folder_with_only_hidden_files_is_usable(old_model: Path, tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / ".DS_Store").write_text("")
    refit_prior(old_model, tmp_path / "new", device="cpu", progress=lambda e: None)
    assert load_model(tmp_path / "new").prior.diagonal


def test_an_autoencoder_gets_an_em_mixture(tmp_path: Path, make_train_config) -> None:
    from backend.training.loop import run

    run(make_train_config(tmp_path / "ae", mode="ae", epochs=1), progress=lambda e: None)
    summary = refit_prior(tmp_path / "ae", tmp_path / "ae2", device="cpu", progress=lambda e: None)
    prior = load_model(tmp_path / "ae2").prior
    assert not prior.diagonal and prior.components <= 2 and "spread" not in summary


def test_moved_training_data_is_named_with_the_fix(old_model: Path, tmp_path: Path) -> None:
    lm = load_model(old_model)
    meta = {**lm.meta, "train_config": {**lm.meta["train_config"], "procedural": None, "data": "/gone/swords"}}
    save_model(old_model, lm.model, prior=lm.prior, meta=meta)
    with pytest.raises(ConfigError, match="/gone/swords.*--data"):
        refit_prior(old_model, tmp_path / "x", device="cpu")
    summary = refit_prior(old_model, tmp_path / "x", procedural="sword,mug:12", device="cpu",
                          progress=lambda e: None)
    assert summary["prior_components"] > lm.meta["train_shapes"] and summary["labels"] == ["mug", "sword"]
    assert load_model(tmp_path / "x").meta["prior_fit"]["procedural"] == "sword,mug:12"
    assert all(p.diagonal for p in load_model(tmp_path / "x").label_priors.values())


def test_a_model_without_a_training_record_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not record how it was trained"):
        refit_prior(tiny_model_dir, tmp_path / "x", device="cpu")


def test_bad_spread_is_refused(old_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prior_spread"):
        refit_prior(old_model, tmp_path / "x", spread=0.0, device="cpu")


def test_cli_prints_a_summary_and_reports_errors(old_model: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["refit-prior", "--model", str(old_model), "--out", str(tmp_path / "new"), "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["default_prior"] in ("gmm", "normal")
    assert main(["refit-prior", "--model", str(old_model), "--device", "cpu"]) == 2
    assert "--force" in capsys.readouterr().err
