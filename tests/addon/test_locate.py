"""blender_addon.bpyfree.locate without bpy: backend root, model folders, interpreter search and its cache."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from blender_addon.bpyfree import locate

REPO = Path(__file__).resolve().parents[2]


def make_backend(folder: Path) -> Path:
    (folder / "backend").mkdir(parents=True)
    (folder / "backend" / "__init__.py").write_text("")
    return folder


def make_model(folder: Path, name: str | None = None, fmt: str = "atlasvae-model") -> Path:
    folder.mkdir(parents=True)
    meta = {"name": name} if name else {}
    (folder / "config.json").write_text(json.dumps({"format": fmt, "meta": meta}))
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def fake_python(path: Path, exit_code: int, counter: Path | None = None) -> Path:
    """A shell script standing in for an interpreter: `-c "import torch"` exits with exit_code."""
    count = f'echo x >> "{counter}"\n' if counter else ""
    message = "echo 'ModuleNotFoundError: No module named torch' >&2\n" if exit_code else ""
    path.write_text(f"#!/bin/sh\n{count}{message}exit {exit_code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture(autouse=True)
def fresh_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    locate.forget_checks()
    monkeypatch.delenv(locate.PYTHON_ENV, raising=False)
    monkeypatch.delenv(locate.MODELS_ENV, raising=False)


def test_add_on_modules_import_without_bpy() -> None:
    code = ("import sys; import blender_addon, blender_addon.bpyfree.client, blender_addon.bpyfree.wire, "
            "blender_addon.bpyfree.locate, blender_addon.bpyfree.uvs; "
            "assert 'bpy' not in sys.modules, 'bpy imported'; assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_backend_root_bundled_dev_and_missing(tmp_path: Path) -> None:
    bundled = make_backend(tmp_path / "bundled" / "atlasvae")
    assert locate.backend_root(bundled) == bundled
    repo = make_backend(tmp_path / "repo")
    (repo / "blender_addon").mkdir()
    assert locate.backend_root(repo / "blender_addon") == repo
    lonely = tmp_path / "lonely" / "addon"
    lonely.mkdir(parents=True)
    with pytest.raises(locate.LocateError, match="backend package not found") as info:
        locate.backend_root(lonely)
    assert str(lonely / "backend") in str(info.value) and str(lonely.parent / "backend") in str(info.value)


def test_backend_root_of_this_repo() -> None:
    assert locate.backend_root() == REPO


def test_bundled_models_dir_prefers_env_then_addon_then_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    addon = tmp_path / "repo" / "addon"
    addon.mkdir(parents=True)
    assert locate.bundled_models_dir(addon) is None
    (tmp_path / "repo" / "models").mkdir()
    assert locate.bundled_models_dir(addon) == tmp_path / "repo" / "models"
    (addon / "models").mkdir()
    assert locate.bundled_models_dir(addon) == addon / "models"
    monkeypatch.setenv(locate.MODELS_ENV, str(tmp_path / "elsewhere"))
    assert locate.bundled_models_dir(addon) == tmp_path / "elsewhere"


def test_find_models_names_sources_and_skips_non_models(tmp_path: Path) -> None:
    bundled, user = tmp_path / "bundled", tmp_path / "user"
    make_model(bundled / "base", name="Base Model")
    make_model(bundled / "other")
    make_model(bundled / "foreign", fmt="something-else")
    (bundled / "empty").mkdir()
    make_model(user / "mine")
    found = locate.find_models([(bundled, "bundled"), (user, "user"), (bundled, "again"),
                                (None, "none"), (tmp_path / "missing", "missing")])
    assert [(e.name, e.path.name, e.source) for e in found] == [
        ("Base Model", "base", "bundled"), ("other", "other", "bundled"), ("mine", "mine", "user")]


def test_find_models_accepts_a_model_folder_as_root(tmp_path: Path) -> None:
    single = make_model(tmp_path / "single")
    assert [e.path for e in locate.find_models([(single, "env")])] == [single.resolve()]


def test_a_named_python_is_used_or_refused_never_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = fake_python(tmp_path / "good", 0)
    bad = fake_python(tmp_path / "bad", 1)
    addon = tmp_path / "repo" / "addon"
    addon.mkdir(parents=True)
    monkeypatch.setattr(sys, "executable", str(good))
    assert locate.find_python(str(good), tmp_path / "user", addon) == str(good)
    with pytest.raises(locate.LocateError) as info:
        locate.find_python(str(bad), tmp_path / "user", addon)
    assert str(info.value).startswith(f"Backend Python {bad} (set in the add-on preferences) cannot run the "
                                      "backend (ModuleNotFoundError: No module named torch)")
    missing = tmp_path / "nowhere" / "python3"
    with pytest.raises(locate.LocateError, match=f"Backend Python {missing} .*does not exist"):
        locate.find_python(str(missing), tmp_path / "user", addon)
    monkeypatch.setenv(locate.PYTHON_ENV, str(bad))
    with pytest.raises(locate.LocateError, match=rf"Backend Python {bad} \(set by \$ATLASVAE_PYTHON\)"):
        locate.find_python("", tmp_path / "user", addon)
    assert locate.find_python(str(good), tmp_path / "user", addon) == str(good), "preferences come first"


def test_find_python_searches_in_order_when_none_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = fake_python(tmp_path / "bad", 1)
    addon = tmp_path / "repo" / "addon"
    addon.mkdir(parents=True)
    monkeypatch.setattr(sys, "executable", str(bad))
    venv_python = locate.venv_python(locate.user_venv_dir(tmp_path / "user"))
    venv_python.parent.mkdir(parents=True)
    fake_python(venv_python, 0)
    assert locate.find_python("", tmp_path / "user", addon) == str(venv_python)

    with pytest.raises(locate.LocateError) as info:
        locate.find_python("", tmp_path / "nouser", addon)
    text = str(info.value)
    assert "No Python with torch" in text
    assert "user environment" in text and "project .venv" in text
    assert f"this Python {bad}: ModuleNotFoundError" in text


def test_project_venv_is_a_candidate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    addon = tmp_path / "repo" / "addon"
    addon.mkdir(parents=True)
    venv_python = locate.venv_python(tmp_path / "repo" / ".venv")
    venv_python.parent.mkdir(parents=True)
    fake_python(venv_python, 0)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "missing-python"))
    assert locate.find_python("", None, addon) == str(venv_python)


def test_each_interpreter_is_checked_once(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    python = fake_python(tmp_path / "py", 0, counter)
    for _ in range(3):
        assert locate.check_python(python) == (True, "torch imports")
    assert counter.read_text().count("x") == 1
    locate.forget_checks()
    locate.check_python(python)
    assert counter.read_text().count("x") == 2


def test_venv_python_layout_per_platform(tmp_path: Path) -> None:
    assert locate.venv_python(tmp_path, windows=True) == tmp_path / "Scripts" / "python.exe"
    assert locate.venv_python(tmp_path, windows=False) == tmp_path / "bin" / "python"


def test_runtime_requirements_drop_dev_packages(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("# pinned\ntorch==2.13.0\nnumpy==1.26.4  # comment\nbpy==5.0.1\npytest==9.2.0\n"
                   "fake-bpy-module==1\nfake_bpy_module==2\nmypy==2\nhypothesis==6\nscipy>=1.10\n\n")
    assert locate.runtime_requirements(req) == ["torch==2.13.0", "numpy==1.26.4", "scipy>=1.10"]


def test_repo_requirements_keep_torch_and_drop_bpy() -> None:
    lines = locate.runtime_requirements(locate.requirements_file())
    names = {line.split("==")[0] for line in lines}
    assert "torch" in names and "numpy" in names
    assert not names & {"bpy", "pytest", "mypy", "fake-bpy-module", "hypothesis"}


def test_fallback_user_dir_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if os.name == "nt" or sys.platform == "darwin":
        pytest.skip("XDG layout is Linux-only")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert locate.fallback_user_dir() == tmp_path / "atlasvae"


def test_model_card_facts_come_from_config_json(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "chairs")
    config = json.loads((folder / "config.json").read_text())
    config["labels"] = ["chair", "stool"]
    config["meta"] = {"name": "chairs", "epoch": 20, "finished": False, "train_shapes": 40,
                      "metrics": {"val_chamfer_x1e3": 2.345}, "trained_at": "2026-11-20 14:05",
                      "val_shapes": 5, "train_config": {"data": "/home/trainer/assets/chairs",
                                                        "init": "C:\\models\\base"}}
    (folder / "config.json").write_text(json.dumps(config))
    assert locate.model_card(folder) == [
        ("Families", "chair, stool"), ("Trained on", "chairs (40 shapes, 5 held out)"), ("Fine-tuned from", "base"),
        ("Epochs", "20 (unfinished)"), ("Validation Chamfer", "2.35 x1e-3"), ("Trained", "2026-11-20 14:05")]
    del config["meta"]["trained_at"]
    (folder / "config.json").write_text(json.dumps(config))
    assert locate.model_card(folder)[-1][0] == "Validation Chamfer", "no date rather than the install's"
    assert locate.model_card(tmp_path / "missing") == []
