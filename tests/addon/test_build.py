"""build_addon.py: staging, manifest checks, the zip layout, Blender's own validator, and installing
the zip into real bpy as an extension (in a subprocess, so it never collides with the development copy)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import build_addon

from .conftest import backend_python

REPO = Path(__file__).resolve().parents[2]


def fake_repo(tmp_path: Path) -> Path:
    """A copy of the add-on and backend sources with one model folder and a pinned requirements list."""
    repo = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "blender_addon", repo / "blender_addon", ignore=ignore)
    shutil.copytree(REPO / "backend", repo / "backend", ignore=ignore)
    (repo / "backend" / "__pycache__").mkdir(exist_ok=True)
    (repo / "backend" / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"\0")
    model = repo / "models" / "base"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"format": "atlasvae-model"}))
    (model / "model.safetensors").write_bytes(b"w")
    (model / "MODEL_CARD.md").write_text("card\n")
    (repo / "requirements.txt").write_text("torch==2.13.0\nnumpy==1.26.4\nbpy==5.0.1\npytest==9.2.0\n")
    shutil.copy2(REPO / "LICENSE", repo / "LICENSE")
    return repo


def test_build_zip_layout(tmp_path: Path) -> None:
    repo = fake_repo(tmp_path)
    zip_path = build_addon.build(tmp_path / "dist", repo)
    assert zip_path == tmp_path / "dist" / "atlasvae-0.1.0.zip"
    names = set(zipfile.ZipFile(zip_path).namelist())
    for required in ("blender_manifest.toml", "__init__.py", "bpyfree/client.py", "bpyfree/session.py",
                     "bpyfree/backend_process.py", "bpyfree/locate.py", "jobs.py", "feedback.py",
                     "operators/__init__.py", "operators/sample.py", "operators/from_selection.py", "menus.py",
                     "runtime.py",
                     "backend/__init__.py", "backend/serving/entry.py", "backend/training/loop.py", "models/base/config.json",
                     "models/base/model.safetensors", "models/base/MODEL_CARD.md", "requirements.txt", "LICENSE"):
        assert required in names, f"{required} missing from the zip"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith("atlasvae/")], "zip root must be the add-on's files"
    requirements = zipfile.ZipFile(zip_path).read("requirements.txt").decode().split()
    assert requirements == ["torch==2.13.0", "numpy==1.26.4"]
    assert not (tmp_path / "dist" / "staging").exists()


def test_stage_returns_the_addon_folder(tmp_path: Path) -> None:
    root = build_addon.stage(tmp_path / "out", fake_repo(tmp_path))
    assert root.name == "atlasvae"
    assert (root / "blender_manifest.toml").is_file() and (root / "backend" / "cli.py").is_file()


@pytest.mark.parametrize("field", ["maintainer", "blender_version_min", "license", "id"])
def test_missing_manifest_field_fails_clearly(tmp_path: Path, field: str) -> None:
    repo = fake_repo(tmp_path)
    manifest = repo / "blender_addon" / "blender_manifest.toml"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(line for line in lines if not line.startswith(f"{field} ")) + "\n")
    with pytest.raises(build_addon.BuildError, match=f"missing required field.*{field}"):
        build_addon.build(tmp_path / "dist", repo)
    assert not (tmp_path / "dist" / "atlasvae-0.1.0.zip").exists()


def test_punctuated_tagline_is_refused(tmp_path: Path) -> None:
    repo = fake_repo(tmp_path)
    manifest = repo / "blender_addon" / "blender_manifest.toml"
    text = manifest.read_text().replace('with an AtlasNet VAE"', 'with an AtlasNet VAE."')
    manifest.write_text(text)
    with pytest.raises(build_addon.BuildError, match="tagline"):
        build_addon.stage(tmp_path / "out", repo)


def test_cli_reports_a_bad_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "blender_manifest.toml"
    manifest.write_text("id = [unclosed\n")
    with pytest.raises(build_addon.BuildError, match="not valid TOML"):
        build_addon.read_manifest(manifest)


def blender_ext_cli() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        pytest.skip("bpy is not installed")
    found = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        pytest.skip("Blender's extension command line tool is not in this bpy build")
    return found[-1]


def test_blender_validates_the_real_zip(tmp_path: Path) -> None:
    zip_path = build_addon.build(tmp_path / "dist")
    proc = subprocess.run([sys.executable, str(blender_ext_cli()), "validate", str(zip_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = zipfile.ZipFile(zip_path).read("blender_manifest.toml").decode()
    assert 'license = ["SPDX:GPL-3.0-or-later"]' in manifest
    assert "GNU GENERAL PUBLIC LICENSE" in zipfile.ZipFile(zip_path).read("LICENSE").decode()
    for permission in ("files = ", "network = "):
        assert permission in manifest


def test_a_manifest_blender_refuses_fails_the_build(tmp_path: Path) -> None:
    # Our own checks pass this manifest; Blender's validator does not (version is not semantic).
    repo = fake_repo(tmp_path)
    manifest = repo / "blender_addon" / "blender_manifest.toml"
    manifest.write_text(manifest.read_text().replace('version = "0.1.0"', 'version = "zero"'))
    with pytest.raises(build_addon.BuildError, match="validator refused it.*semantic-version"):
        build_addon.build(tmp_path / "dist", repo)
    assert not list((tmp_path / "dist").glob("*.zip")), "a refused zip must not be left in dist/"


def test_a_licence_that_does_not_match_the_license_file_fails(tmp_path: Path) -> None:
    repo = fake_repo(tmp_path)
    (repo / "LICENSE").write_text("MIT License\n")
    with pytest.raises(build_addon.BuildError, match="LICENSE: does not hold the text of SPDX:GPL-3.0-or-later"):
        build_addon.stage(tmp_path / "out", repo)
    manifest = repo / "blender_addon" / "blender_manifest.toml"
    manifest.write_text(manifest.read_text().replace("SPDX:GPL-3.0-or-later", "SPDX:MIT"))
    with pytest.raises(build_addon.BuildError, match="manifest licence 'SPDX:MIT' has no LICENSE text"):
        build_addon.stage(tmp_path / "out", repo)


INSTALL_SCRIPT = r"""
import sys
import bpy

zip_path, model_path = sys.argv[1], sys.argv[2]
result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
assert result == {"FINISHED"}, result
module = "bl_ext.user_default.atlasvae"
assert module in bpy.context.preferences.addons, [a.module for a in bpy.context.preferences.addons]
prefs = bpy.context.preferences.addons[module].preferences
assert type(prefs).bl_idname == module, type(prefs).bl_idname
import importlib
locate = importlib.import_module(module + ".bpyfree.locate")
assert locate.backend_root() == locate.ADDON_DIR, "bundled backend not used"
settings = bpy.context.scene.atlasvae
settings.use_model(model_path)
settings.count = 2
settings.resolution_preset = "642"
assert bpy.ops.atlasvae.sample() == {"FINISHED"}
names = sorted(o.name for o in bpy.data.objects if o.get("atlasvae_model"))
print("SAMPLED", names)
import addon_utils
addon_utils.disable(module, default_set=True)
assert not hasattr(bpy.types.Scene, "atlasvae")
print("OK")
"""


def test_zip_installs_as_an_extension_and_runs(tmp_path: Path, models_dir: Path) -> None:
    zip_path = build_addon.build(tmp_path / "dist")
    user = tmp_path / "blender-user"
    env = {**os.environ, "BLENDER_USER_CONFIG": str(user / "config"), "BLENDER_USER_SCRIPTS": str(user / "scripts"),
           "BLENDER_USER_EXTENSIONS": str(user / "extensions"), "BLENDER_USER_DATAFILES": str(user / "data"),
           "ATLASVAE_PYTHON": backend_python(), "ATLASVAE_MODELS_DIR": str(models_dir)}
    model = str((models_dir / "tiny").resolve())
    proc = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(zip_path), model], capture_output=True,
                          text=True, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SAMPLED ['tiny_s0_0', 'tiny_s0_1']" in proc.stdout
    assert "OK" in proc.stdout
    assert "matches no enum" not in proc.stdout + proc.stderr
    installed = user / "extensions" / "user_default" / "atlasvae"
    assert (installed / "backend" / "serving" / "entry.py").is_file()
