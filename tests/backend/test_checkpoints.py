"""Model folders: bit-exact round trips, and a clear CheckpointError naming the file for every kind of damage."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.checkpoints import (CONFIG_FILE, PENDING_CONFIG, WEIGHTS_FILE, atomic_write_bytes, is_model_folder, load_model,
                                 read_model_config, save_model)
from backend.errors import CheckpointError
from backend.model import ModelConfig


def test_a_diagonal_prior_raises_the_format_version(tmp_path: Path, make_tiny_model, make_tiny_prior) -> None:
    from backend.prior import posterior_mixture

    model = make_tiny_model(2)
    diag = posterior_mixture(np.zeros((5, 16)), np.full((5, 16), -2.0))
    assert read_model_config(save_model(tmp_path / "full", model, prior=make_tiny_prior(2)))["format_version"] == 1
    assert read_model_config(save_model(tmp_path / "diag", model, prior=diag))["format_version"] == 2
    assert read_model_config(save_model(tmp_path / "label", model, label_priors={"a": diag}))["format_version"] == 2
    assert load_model(tmp_path / "diag").prior.diagonal


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_config(folder: Path, edit) -> None:
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def test_round_trip_is_bit_exact(tmp_path: Path, make_tiny_model, make_tiny_prior) -> None:
    model, prior = make_tiny_model(3, template="squares", patches=2), make_tiny_prior(3)
    folder = save_model(tmp_path / "m", model, prior=prior, meta={"name": "exact", "epoch": 7})
    lm = load_model(folder)
    assert lm.config == model.cfg
    assert lm.name == "exact" and lm.meta["epoch"] == 7 and lm.path == folder
    assert not lm.model.training
    saved, loaded = model.state_dict(), lm.model.state_dict()
    assert saved.keys() == loaded.keys()
    for key, value in saved.items():
        assert torch.equal(value, loaded[key]), key
        assert value.dtype == loaded[key].dtype, key
    assert lm.prior is not None
    np.testing.assert_array_equal(lm.prior.weights, prior.weights)
    np.testing.assert_array_equal(lm.prior.means, prior.means)
    np.testing.assert_array_equal(lm.prior.chol, prior.chol)


def test_round_trip_without_prior_and_name_defaults_to_folder(tmp_path: Path, make_tiny_model) -> None:
    folder = save_model(tmp_path / "plain_model", make_tiny_model(0))
    lm = load_model(folder)
    assert lm.prior is None
    assert lm.name == "plain_model"
    assert read_model_config(folder)["has_prior"] is False


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path: Path, make_tiny_model, make_tiny_prior) -> None:
    folder = tmp_path / "m"
    save_model(folder, make_tiny_model(0))
    save_model(folder, make_tiny_model(1), prior=make_tiny_prior())  # overwrite in place
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    assert is_model_folder(folder)
    config = read_model_config(folder)
    assert config["weights_sha256"] == hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_truncated_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "m")
    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_model(folder)
    assert str(weights) in str(err.value)


def test_corrupted_bytes(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "m")
    weights = folder / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    assert str(weights) in str(err.value)


def test_garbage_weights_with_matching_checksum(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Even when the checksum vouches for them, bytes that are not safetensors are refused cleanly."""
    folder = _copy(tiny_model_dir, tmp_path / "m")
    weights = folder / WEIGHTS_FILE
    garbage = b"\xff" * 8 + b"not a safetensors header at all"
    weights.write_bytes(garbage)
    _edit_config(folder, lambda c: c.update(weights_sha256=hashlib.sha256(garbage).hexdigest()))
    with pytest.raises(CheckpointError, match="safetensors") as err:
        load_model(folder)
    assert str(weights) in str(err.value)


def test_missing_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "m")
    (folder / WEIGHTS_FILE).unlink()
    assert not is_model_folder(folder)
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    assert str(folder / WEIGHTS_FILE) in str(err.value)


def test_missing_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "m")
    (folder / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match=CONFIG_FILE) as err:
        load_model(folder)
    assert str(folder) in str(err.value)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist") as err:
        load_model(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", "\xff\xfe"])
def test_invalid_json(tiny_model_dir: Path, tmp_path: Path, text: str) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "m")
    (folder / CONFIG_FILE).write_text(text, encoding="latin-1")
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    assert str(folder / CONFIG_FILE) in str(err.value)


@pytest.mark.parametrize("edit", [
    lambda c: c.update(format="something-else"),
    lambda c: c.pop("format"),
    lambda c: c.update(format_version=99),
    lambda c: c.update(format_version="1"),
    lambda c: c.update(model={"latent_dim": 16, "colour": "red"}),
    lambda c: c.update(model={"latent_dim": -3}),
    lambda c: c.update(model={"encoder_widths": ["wide"]}),
    lambda c: c.update(model="sphere"),
    lambda c: c["model"].update(latent_dim="16"),
    lambda c: c.pop("weights_sha256"),
], ids=["wrong-format", "no-format", "newer-version", "version-not-int", "unknown-key", "bad-value",
        "non-numeric-width", "model-not-object", "latent-as-text", "no-checksum"])
def test_bad_config_fields(tiny_model_dir: Path, tmp_path: Path, edit) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "m")
    _edit_config(folder, edit)
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    assert str(folder) in str(err.value)


def test_config_weights_mismatch_names_the_weights(tmp_path: Path, make_tiny_model) -> None:
    folder = save_model(tmp_path / "m", make_tiny_model(0))
    _edit_config(folder, lambda c: c["model"].update(latent_dim=32))
    with pytest.raises(CheckpointError, match="do not fit") as err:
        load_model(folder)
    message = str(err.value)
    assert str(folder / WEIGHTS_FILE) in message
    assert "shape mismatch" in message


def test_mode_mismatch_names_unexpected_keys(tmp_path: Path, make_tiny_model) -> None:
    folder = save_model(tmp_path / "m", make_tiny_model(0))
    _edit_config(folder, lambda c: c["model"].update(mode="ae"))
    with pytest.raises(CheckpointError, match="unexpected encoder.logvar") as err:
        load_model(folder)
    assert str(folder / WEIGHTS_FILE) in str(err.value)


def test_prior_flag_without_prior_tensors(tmp_path: Path, make_tiny_model) -> None:
    folder = save_model(tmp_path / "m", make_tiny_model(0))
    _edit_config(folder, lambda c: c.update(has_prior=True))
    with pytest.raises(CheckpointError, match="prior") as err:
        load_model(folder)
    assert str(folder / WEIGHTS_FILE) in str(err.value)


def test_prior_of_another_latent_size_is_refused(tmp_path: Path, make_tiny_model) -> None:
    from backend.prior import fit_gmm

    prior = fit_gmm(np.random.default_rng(0).standard_normal((12, 5)), components=1)
    folder = save_model(tmp_path / "m", make_tiny_model(0), prior=prior)
    with pytest.raises(CheckpointError, match="a prior has 5 latent dimensions") as err:
        load_model(folder)
    assert str(folder / WEIGHTS_FILE) in str(err.value)


def test_loaded_config_is_a_model_config(tiny_model_dir: Path) -> None:
    lm = load_model(tiny_model_dir)
    assert isinstance(lm.config, ModelConfig) and lm.config.latent_dim == 16


def test_a_save_cut_short_at_any_step_leaves_a_loadable_folder(tmp_path: Path, make_tiny_model) -> None:
    """Saves go pending config -> weights -> rename; a crash between any two steps still loads."""
    old, new = make_tiny_model(1), make_tiny_model(2)
    folder = save_model(tmp_path / "m", old, meta={"name": "old"})
    save_model(tmp_path / "next", new, meta={"name": "new"})
    assert not (folder / PENDING_CONFIG).exists()

    shutil.copy(tmp_path / "next" / CONFIG_FILE, folder / PENDING_CONFIG)  # crash after step 1
    assert load_model(folder).name == "old"

    shutil.copy(tmp_path / "next" / WEIGHTS_FILE, folder / WEIGHTS_FILE)  # crash after step 2
    lm = load_model(folder)
    assert lm.name == "new"
    torch.testing.assert_close(lm.model.state_dict(), new.state_dict(), rtol=0, atol=0)

    (folder / PENDING_CONFIG).write_text("{not json")  # a damaged pending file is no excuse
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(folder)
