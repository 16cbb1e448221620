"""What the CLI writes: nothing of the user's without --force, nothing outside --out, no lock left behind,
output paths checked before the work, and settings that are not finite numbers refused by name."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from backend.cli import main
from backend.errors import ConfigError
from backend.training.config import NUMBER_SETTINGS, TrainConfig
from backend.training.output import LOCK_FILE
from tests.faults import unwritable_folder

TINY = ["--latent-dim", "16", "--decoder-width", "32", "--decoder-layers", "1", "--points", "128",
        "--batch-size", "4", "--sheet-every", "0", "--device", "cpu"]


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sample_refuses_to_overwrite_an_existing_sheet(tiny_model_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    sheet = tmp_path / "holiday.png"
    sheet.write_bytes(b"the user's picture")
    argv = ["sample", "--model", str(tiny_model_dir), "--n", "1", "--resolution", "42", "--device", "cpu",
            "--out", str(tmp_path / "s"), "--sheet", str(sheet)]
    assert main(argv) == 2
    assert f"{sheet} already exists" in _error(capsys) and sheet.read_bytes() == b"the user's picture"
    assert not (tmp_path / "s").exists()
    assert main([*argv, "--force"]) == 0
    assert sheet.read_bytes().startswith(b"\x89PNG")


def test_evaluate_refuses_to_overwrite_its_out_file_without_force(tiny_model_dir: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    report.write_text("the user's notes")
    argv = ["evaluate", "--model", str(tiny_model_dir), "--procedural", "sword:2", "--device", "cpu",
            "--out", str(report)]
    assert main(argv) == 2
    assert f"{report} already exists" in _error(capsys) and report.read_text() == "the user's notes"
    assert main([*argv, "--force"]) == 0
    assert json.loads(report.read_text())["name"] == "tiny"


def test_finetune_force_never_replaces_a_folder_that_is_not_a_model(tiny_model_dir: Path, tmp_path: Path,
                                                                    inputs: dict[str, Path],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "config.json").write_text('{"my": "settings"}')
    (out / "history.json").write_text("[1, 2, 3]")
    before = _tree(out)
    assert main(["finetune", "--init", str(tiny_model_dir), "--data", str(inputs["data"]), "--out", str(out),
                 "--epochs", "1", "--force", *TINY[6:]]) == 2
    line = _error(capsys)
    assert f"--out {out}" in line and "not a model folder" in line
    assert _tree(out) == before and sorted(p.name for p in out.iterdir()) == ["config.json", "history.json"]


def test_a_refused_run_leaves_no_lock_file(tiny_model_dir: Path, tmp_path: Path, inputs: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "base"
    shutil.copytree(tiny_model_dir, model)
    before = sorted(p.name for p in model.iterdir())
    assert main(["finetune", "--init", str(model), "--data", str(inputs["data"]), "--out", str(model),
                 "--epochs", "1", *TINY[6:]]) == 2
    assert "not empty" in _error(capsys)
    assert sorted(p.name for p in model.iterdir()) == before


def test_a_run_that_finishes_leaves_no_lock_file(make_train_config, tmp_path: Path) -> None:
    from backend.training.loop import run

    out = tmp_path / "run"
    run(make_train_config(out, epochs=1), progress=lambda event: None)
    assert not (out / LOCK_FILE).exists()


@pytest.mark.skipif(os.name != "posix", reason="needs symbolic links")
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_never_created(tmp_path: Path, inputs: dict[str, Path],
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    target = tmp_path / "elsewhere" / "planted"
    target.parent.mkdir()
    (out / LOCK_FILE).symlink_to(target)
    assert main(["train", "--data", str(inputs["data"]), "--out", str(out), "--epochs", "1", *TINY]) == 2
    line = _error(capsys)
    assert str(out / LOCK_FILE) in line and "link" in line
    assert not target.exists() and list(target.parent.iterdir()) == []


@pytest.mark.parametrize("inside", [".", "runs/new"])
def test_out_inside_data_is_refused_and_data_left_alone(inside: str, tmp_path: Path, inputs: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    shutil.copytree(inputs["data"], data)
    before = _tree(data)
    out = data / inside
    assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--force", *TINY]) == 2
    line = _error(capsys)
    assert f"--out {out}" in line and f"inside --data {data}" in line
    assert _tree(data) == before and not (data / "runs").exists()


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    yield from unwritable_folder(tmp_path / "locked")


@pytest.mark.parametrize("where", ["suffix", "unwritable"])
def test_reconstruct_checks_its_output_before_the_fit(where: str, tiny_model_dir: Path, tmp_path: Path,
                                                      inputs: dict[str, Path], request: pytest.FixtureRequest,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.xyz" if where == "suffix" else request.getfixturevalue("locked") / "sub" / "r.obj"
    assert main(["reconstruct", str(inputs["mesh"]), "--model", str(tiny_model_dir), "--fit", "full",
                 "--steps", "5000", "--resolution", "42", "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "step" not in err, err  # refused before the fit's first step
    assert err.startswith(f"error: {out if where == 'suffix' else out.parent.parent}")


@pytest.mark.parametrize("option", ["--lr", "--beta", "--free-bits", "--prior-spread", "--val-fraction"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_settings_that_are_not_finite_are_refused_by_name(option: str, value: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "--procedural", "sword:4", "--out", str(out), "--epochs", "1", option, value,
                 *TINY]) == 2
    assert f"{option.lstrip('-').replace('-', '_')} must be a finite number" in _error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("name", NUMBER_SETTINGS)
def test_every_number_setting_refuses_nan(name: str, tmp_path: Path) -> None:
    cfg = TrainConfig(out=str(tmp_path / "run"), procedural="sword:4", **{name: math.nan})
    with pytest.raises(ConfigError, match=f"{name} must be a finite number"):
        cfg.check()


@pytest.mark.parametrize("name, value", [("device", 3), ("name", ["x"]), ("resume", "yes"), ("cache_dir", 5),
                                         ("freeze", 7)])
def test_settings_of_the_wrong_type_are_refused_by_name(name: str, value: object, tmp_path: Path) -> None:
    cfg = TrainConfig(out=str(tmp_path / "run"), procedural="sword:4", **{name: value})
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        cfg.check()
