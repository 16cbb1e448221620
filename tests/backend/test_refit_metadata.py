"""refit-prior reads the training settings recorded in a model's metadata, which the weights' checksum does
not cover: paths from there are never used for writing, and every value is checked against sane bounds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backend.checkpoints import CONFIG_FILE
from backend.data.procedural import write_dataset
from backend.errors import ConfigError
from backend.training.loop import run
from backend.training.refit import refit_prior


@pytest.fixture(scope="module")
def folder_model(tmp_path_factory: pytest.TempPathFactory, make_train_config) -> Path:
    """A tiny model trained on a folder of meshes (so its record names a data folder and a cache folder)."""
    root = tmp_path_factory.mktemp("refit_meta")
    write_dataset(root / "data", ["sword", "mug"], per_family=3, seed=0)
    cfg = make_train_config(root / "model", procedural=None, data=str(root / "data"), epochs=1,
                            cache_dir=str(root / "train_cache"))
    assert run(cfg, progress=lambda event: None)["state"] == "finished"
    return root / "model"


def _crafted(folder_model: Path, tmp_path: Path, **recorded: object) -> Path:
    model = shutil.copytree(folder_model, tmp_path / "crafted")
    config = json.loads((model / CONFIG_FILE).read_text())
    config["meta"]["train_config"].update(recorded)
    (model / CONFIG_FILE).write_text(json.dumps(config))
    return model


def test_a_recorded_cache_dir_is_never_written(folder_model: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLASVAE_CACHE", str(tmp_path / "user_cache"))
    elsewhere = tmp_path / "elsewhere" / "planted"
    model = _crafted(folder_model, tmp_path, cache_dir=str(elsewhere), out=str(tmp_path / "also_elsewhere"))
    summary = refit_prior(model, out=tmp_path / "refit")
    assert summary["out"] == str(tmp_path / "refit")
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "also_elsewhere").exists()
    assert any((tmp_path / "user_cache").glob("*.npy"))  # the user's own cache was used instead


@pytest.mark.parametrize("field, value, fragment", [
    ("max_faces", 10**12, "max_faces must be an integer between 1 and 2000000, got 1000000000000"),
    ("prior_components", 10**9, "prior_components must be an integer between 1 and 4096"),
    ("points", 10**9, "points must be an integer between 1 and 100000"),
    ("batch_size", "32", "batch_size must be an integer between 2 and 4096, got '32'"),
    ("seed", -5, "seed must be an integer between 0 and"),
    ("decoder_width", 200_000, "decoder_width must be at most 4096"),
])
def test_recorded_values_out_of_bounds_are_refused_naming_the_model(folder_model: Path, tmp_path: Path,
                                                                    field: str, value: object,
                                                                    fragment: str) -> None:
    model = _crafted(folder_model, tmp_path, **{field: value})
    with pytest.raises(ConfigError) as refused:
        refit_prior(model, out=tmp_path / "refit")
    message = str(refused.value)
    assert message.startswith(f"{model / CONFIG_FILE}: its recorded training settings are invalid")
    assert fragment in message
    assert not (tmp_path / "refit").exists()
