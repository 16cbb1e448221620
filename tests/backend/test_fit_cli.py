"""The command line's fit options: reconstruct --fit/--steps with progress on stderr, interpolate --fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.cli import main
from backend.data.meshio import load_mesh, save_mesh
from backend.data.procedural import generate


@pytest.fixture(scope="module")
def sword_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("meshes") / "sword.obj"
    save_mesh(path, generate("sword", 3))
    return path


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse refusals
        return int(exc.code or 0)


@pytest.mark.parametrize("fit", ["encoder", "latent", "full"])
def test_reconstruct_fit_modes_write_the_output_and_show_progress(fit: str, tiny_model_dir: Path, sword_file: Path,
                                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                                  ) -> None:
    out = tmp_path / f"{fit}.obj"
    assert main(["reconstruct", str(sword_file), "--model", str(tiny_model_dir), "--out", str(out), "--fit", fit,
                 "--steps", "4", "--resolution", "42", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "Chamfer" in captured.out and len(load_mesh(out).vertices) == 42
    if fit == "encoder":
        assert captured.err == ""
    else:
        assert f"fit {fit}: " in captured.err and "step 4/4" in captured.err


@pytest.mark.parametrize("argv,named", [
    (["reconstruct", "{sword}", "--out", "{tmp}/o.obj", "--steps", "0"], "--steps"),
    (["reconstruct", "{sword}", "--out", "{tmp}/o.obj", "--fit", "best"], "--fit"),
    (["interpolate", "{sword}", "{sword}", "--out", "{tmp}/i", "--fit", "full"], "--fit"),
    (["interpolate", "{sword}", "{sword}", "--out", "{tmp}/i", "--fit-steps", "-1"], "--fit-steps"),
])
def test_bad_fit_options_exit_2_naming_the_option(argv: list[str], named: str, tiny_model_dir: Path,
                                                  sword_file: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(sword=sword_file, tmp=tmp_path) for a in argv] + ["--model", str(tiny_model_dir),
                                                                       "--device", "cpu"]
    assert _run(argv) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "o.obj").exists()


def test_interpolate_latent_fit_shows_progress(tiny_model_dir: Path, sword_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "morph"
    assert main(["interpolate", str(sword_file), str(sword_file), "--model", str(tiny_model_dir), "--steps", "2",
                 "--fit-steps", "3", "--out", str(out), "--resolution", "42", "--device", "cpu"]) == 0
    assert "fit latent: latent step 6/6" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["step_000.obj", "step_001.obj"]
