"""An output the OS refuses to write (read-only file system, or no permission when not root) is a clear
`error: PATH: cannot write (...)` with exit 2 for every command, like every other refusal: no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from backend.data.meshio import save_mesh
from backend.data.procedural import generate, write_dataset
from tests.faults import unwritable_folder

REPO = Path(__file__).resolve().parents[2]
SAFETY_TIMEOUT_S = 900.0  # only guards against a hung run; never a speed requirement
TINY = ["--latent-dim", "16", "--decoder-width", "32", "--decoder-layers", "1", "--points", "128",
        "--batch-size", "4", "--sheet-every", "0", "--device", "cpu"]


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    yield from unwritable_folder(tmp_path / "locked")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    save_mesh(root / "mug.obj", generate("mug", 0))
    write_dataset(root / "data", ["sword", "mug"], per_family=2, seed=0)
    return {"mesh": root / "mug.obj", "data": root / "data", "model": tiny_model_dir}


def _cli(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ATLASVAE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=SAFETY_TIMEOUT_S)


@pytest.mark.parametrize("command", ["sample-new-folder", "sample-into", "sample-sheet", "reconstruct",
                                     "reconstruct-new-folder", "interpolate", "finetune", "evaluate"])
def test_unwritable_output_is_a_clear_refusal(command: str, locked: Path, inputs: dict[str, Path],
                                              tmp_path: Path) -> None:
    model = ["--model", str(inputs["model"]), "--device", "cpu"]
    mesh = str(inputs["mesh"])
    args = {
        "sample-new-folder": ["sample", "--n", "2", "--resolution", "42", "--out", str(locked / "new"), *model],
        "sample-into": ["sample", "--n", "2", "--resolution", "42", "--out", str(locked), *model],
        "sample-sheet": ["sample", "--n", "2", "--resolution", "42", "--out", str(tmp_path / "ok"),
                         "--sheet", str(locked / "sheet.png"), *model],
        "reconstruct": ["reconstruct", mesh, "--resolution", "42", "--out", str(locked / "r.obj"), *model],
        "reconstruct-new-folder": ["reconstruct", mesh, "--resolution", "42", "--out", str(locked / "a" / "r.obj"),
                                   *model],
        "interpolate": ["interpolate", mesh, mesh, "--steps", "2", "--resolution", "42", "--out",
                        str(locked / "morph"), *model],
        "finetune": ["finetune", "--data", str(inputs["data"]), "--init", str(inputs["model"]), "--epochs", "1",
                     "--out", str(locked / "run"), *TINY[6:]],
        "evaluate": ["evaluate", "--procedural", "sword:2", "--out", str(locked / "metrics.json"), *model],
    }[command]
    result = _cli(args, tmp_path / "cache")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"{locked}" in errors[0] and "cannot write (" in errors[0], result.stderr[-2000:]
    assert any(reason in errors[0] for reason in ("Read-only file system", "Permission denied")), errors[0]
