"""Files we write get the mode the user's umask gives new files, and replacing a file (--force) keeps its mode.

mkstemp creates 0600 files, so without care every mesh and cache file was private whatever the umask, and
--force quietly made an existing shared file private.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from backend.checkpoints import save_model
from backend.data.datasets import load_folder
from backend.data.meshio import save_mesh
from backend.data.procedural import generate, write_dataset

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_follow_the_umask(umask: int, tmp_path: Path, make_tiny_model) -> None:
    expected = 0o666 & ~umask
    save_mesh(tmp_path / "mug.obj", generate("mug", 0))
    save_model(tmp_path / "model", make_tiny_model(0))
    write_dataset(tmp_path / "data", ["mug"], per_family=1, seed=0)
    load_folder(tmp_path / "data", n_cache=64, cache_dir=tmp_path / "cache", progress=False)
    written = [tmp_path / "mug.obj", tmp_path / "model" / "config.json", tmp_path / "model" / "model.safetensors",
               *(tmp_path / "cache").glob("*.npy")]
    assert len(written) == 5  # the cache holds points and extents
    assert {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in written} == \
        {str(p.relative_to(tmp_path)): oct(expected) for p in written}


def test_replacing_a_file_keeps_its_mode(tmp_path: Path, make_tiny_model) -> None:
    mesh = tmp_path / "mug.obj"
    save_mesh(mesh, generate("mug", 0))
    mesh.chmod(0o640)
    save_mesh(mesh, generate("mug", 1))
    assert _mode(mesh) == 0o640
    model = save_model(tmp_path / "model", make_tiny_model(0))
    (model / "model.safetensors").chmod(0o604)
    save_model(model, make_tiny_model(1))
    assert _mode(model / "model.safetensors") == 0o604


def test_sample_force_keeps_the_mode_of_the_files_it_replaces(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "samples"
    args = [sys.executable, "-m", "backend", "sample", "--model", str(tiny_model_dir), "--n", "2", "--resolution",
            "42", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, preexec_fn=lambda: os.umask(0o022))
    assert first.returncode == 0, first.stderr
    assert _mode(out / "sample_000.obj") == 0o644
    (out / "sample_000.obj").chmod(0o664)
    again = subprocess.run([*args, "--force", "--seed", "3"], cwd=REPO, env=env, capture_output=True, text=True,
                           preexec_fn=lambda: os.umask(0o077))
    assert again.returncode == 0, again.stderr
    assert _mode(out / "sample_000.obj") == 0o664 and _mode(out / "sample_001.obj") == 0o644
