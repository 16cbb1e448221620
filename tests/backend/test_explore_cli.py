"""The Shape Explorer on the command line: `directions` and `explore` (in process, through cli.main), and the
directions a training run writes with its model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.data.meshio import load_mesh
from backend.directions import DIRECTIONS_FILE, read_directions
from backend.checkpoints import load_model


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_directions_prints_one_row_per_direction(tiny_prior_model_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["directions", "--model", str(tiny_prior_model_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("directions of the whole model")
    rows = [line.split(None, 2) for line in out[2:-1]]
    assert [int(r[0]) for r in rows] == list(range(8))
    sigmas = [float(r[1]) for r in rows]
    assert sigmas == sorted(sigmas, reverse=True) and all(0 < len(r[2]) <= 16 for r in rows)
    assert out[-1] == "families with their own directions: none"
    assert "param 'label': 'sword' is not one of model 'tiny_prior''s labels (none)" in _error(
        capsys, ["directions", "--model", str(tiny_prior_model_dir), "--label", "sword"])


def test_explore_moves_a_mesh_in_its_own_place(tiny_prior_model_dir: Path, mug_file: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    base = ["explore", "--model", str(tiny_prior_model_dir), "--device", "cpu", "--surface", "patches",
            "--resolution", "642", "--fit", "encoder"]
    assert main([*base, "--from", str(mug_file), "--out", str(tmp_path / "still.obj")]) == 0
    assert main([*base, "--from", str(mug_file), "--direction", "0", "--amount", "2.5", "--direction", "1",
                 "--amount", "-1", "--out", str(tmp_path / "moved.obj"), "--save-latent",
                 str(tmp_path / "moved.txt")]) == 0
    assert "(0 by +2.5, 1 by -1)" in capsys.readouterr().out
    still, moved = load_mesh(tmp_path / "still.obj").vertices, load_mesh(tmp_path / "moved.obj").vertices
    assert np.abs(moved - still).max() > 1e-3
    mug = load_mesh(mug_file).vertices
    assert np.linalg.norm(still.mean(axis=0) - mug.mean(axis=0)) < 0.5 * np.ptp(mug, axis=0).max()
    code = np.loadtxt(tmp_path / "moved.txt")
    assert code.shape == (load_model(tiny_prior_model_dir).config.latent_dim,)
    assert main([*base, "--latent", str(tmp_path / "moved.txt"), "--out", str(tmp_path / "unit.obj")]) == 0
    unit = load_mesh(tmp_path / "unit.obj").vertices  # the same shape in the unit ball
    scale = np.ptp(moved, axis=0).max() / np.ptp(unit, axis=0).max()
    np.testing.assert_allclose(moved - moved.mean(axis=0), scale * (unit - unit.mean(axis=0)), atol=1e-4 * scale)
    np.save(tmp_path / "moved.npy", code)
    assert main([*base, "--latent", str(tmp_path / "moved.npy"), "--out", str(tmp_path / "npy.obj")]) == 0
    np.testing.assert_allclose(load_mesh(tmp_path / "npy.obj").vertices, unit, atol=1e-6)


def test_explore_refuses_bad_input_naming_it(tiny_prior_model_dir: Path, mug_file: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    base = ["explore", "--model", str(tiny_prior_model_dir), "--device", "cpu", "--out", str(tmp_path / "x.obj")]
    assert "one --amount per --direction" in _error(capsys, [*base, "--from", str(mug_file), "--direction", "0"])
    (tmp_path / "nan.txt").write_text("1 2 nan\n")
    assert "--latent" in _error(capsys, [*base, "--latent", str(tmp_path / "nan.txt")])
    (tmp_path / "short.txt").write_text("0.5\n" * 3)
    assert "param 'latent' holds 3 values" in _error(capsys, [*base, "--latent", str(tmp_path / "short.txt")])
    (tmp_path / "words.txt").write_text("tall and wide\n")
    assert "not a .npy array or a text file of numbers" in _error(capsys, [*base, "--latent",
                                                                           str(tmp_path / "words.txt")])
    with pytest.raises(SystemExit):
        main([*base, "--from", str(mug_file), "--direction", "0", "--amount", "3.5"])
    assert "must be a number between -3 and 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--from", str(mug_file), "--direction", "8", "--amount", "1"])
    assert "must be an integer between 0 and 7" in capsys.readouterr().err
    assert not (tmp_path / "x.obj").exists()


def test_a_training_run_writes_its_directions(trained_run: dict) -> None:
    out = trained_run["out"]
    assert (out / DIRECTIONS_FILE).is_file()
    lm = load_model(out)
    stored = read_directions(out, lm.weights_sha256, lm.config.latent_dim)
    assert stored is not None and len(stored.overall.sigma) == 8
    assert sorted(stored.families) == []  # 6 swords and 6 mugs: too few shapes per family for their own
