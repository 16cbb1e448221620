"""The CLI's --surface and --face-budget: closed meshes by default for a patch model, clear errors for bad budgets."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.checkpoints import save_model
from backend.cli import main
from backend.data.meshio import load_mesh
from backend.limits import MAX_FACE_BUDGET, MIN_FACE_BUDGET
from backend.surface import is_closed_manifold


@pytest.fixture(scope="module")
def patch_model(tmp_path_factory: pytest.TempPathFactory, make_tiny_model) -> Path:
    return save_model(tmp_path_factory.mktemp("models") / "sq", make_tiny_model(0, template="squares", patches=4),
                      meta={"name": "sq"})


def test_sample_closes_patches_unless_asked(patch_model: Path, tmp_path: Path) -> None:
    assert main(["sample", "--model", str(patch_model), "--n", "1", "--temperature", "0", "--resolution", "400",
                 "--face-budget", "1200", "--out", str(tmp_path / "c")]) == 0
    closed = load_mesh(tmp_path / "c" / "sample_000.obj")
    assert is_closed_manifold(closed.faces) and len(closed.faces) <= 1200
    assert main(["sample", "--model", str(patch_model), "--n", "1", "--temperature", "0", "--resolution", "400",
                 "--surface", "patches", "--out", str(tmp_path / "p")]) == 0
    assert load_mesh(tmp_path / "p" / "sample_000.obj").vertices.shape == (400, 3)


@pytest.mark.parametrize("bad", ["0", "-3", str(MIN_FACE_BUDGET - 1), str(MAX_FACE_BUDGET + 1), "1e9", "1.5", "many"])
@pytest.mark.parametrize("command", [["sample"], ["reconstruct", "in.obj", "--out", "o.obj"],
                                     ["interpolate", "a.obj", "b.obj"]])
def test_bad_face_budget_exits_2_naming_it(command: list[str], bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--face-budget", bad])
    assert info.value.code == 2
    assert "argument --face-budget: must be" in capsys.readouterr().err


def test_bad_surface_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sample", "--surface", "solid"])
    assert info.value.code == 2 and "argument --surface: invalid choice: 'solid'" in capsys.readouterr().err
