"""`pip install .` gives a working `atlasvae` command with every backend subpackage and the bundled model.

The install goes into a fresh venv without network: its dependencies (torch, numpy, ...) come from this
interpreter's site-packages through a .pth file, and pip builds the wheel with this environment's
setuptools (--no-build-isolation --no-index).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def listed_packages() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_every_backend_subpackage_is_listed_for_installation() -> None:
    found = {".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "backend").rglob("__init__.py")}
    missing = sorted(found - set(listed_packages()))
    assert found and not missing, f"backend subpackages missing from pyproject.toml's packages: {missing}"


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="venv layout and console scripts differ on Windows")
def test_pip_install_into_a_fresh_venv_gives_a_working_cli(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for name in ("backend", "models"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.png"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "atlasvae-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                              "--quiet", str(source)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    cli = venv / "bin" / "atlasvae"
    helped = subprocess.run([str(cli), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "sample" in helped.stdout and "reconstruct" in helped.stdout
    probe = "import backend, backend.data.procedural as p; print(backend.__file__, len(p.generate('mug', 0).faces) > 0)"
    where = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert where.stdout.split()[0].startswith(site) and where.stdout.split()[1] == "True"
    out = tmp_path / "samples"
    sampled = subprocess.run([str(cli), "sample", "--n", "1", "--resolution", "162", "--device", "cpu",
                              "--out", str(out)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert (out / "sample_000.obj").is_file()
