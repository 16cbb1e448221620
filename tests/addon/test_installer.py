"""The backend installer (bpy-free): plans, offline installs from a wheel folder, progress, cancel, logs.

Installs are real: `python -m venv` and pip run for real against a wheel folder of tiny stand-in
packages built here (a `torch` that only has a version, and one dependency), so nothing is downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import stat
import sys
import time
import zipfile
from pathlib import Path

import pytest

from blender_addon.bpyfree import installer, locate

REQUIREMENTS = ["torch==2.13.0", "atlasvae-standin-dep==1.0"]
# What the installer's check step and locate.check_python touch of torch: a version and device probes.
STANDIN_TORCH = """__version__ = "2.13.0+standin"


class cuda:
    @staticmethod
    def is_available():
        return False
"""


def write_wheel(folder: Path, name: str, version: str, module: str, source: str) -> Path:
    """A pure-Python wheel holding one module, written by hand (a wheel is a zip with a RECORD)."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = {f"{module}/__init__.py": source,
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: atlasvae-tests\nRoot-Is-Purelib: true\n"
                                         "Tag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}.dist-info/RECORD,,")
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
        zf.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    write_wheel(folder, "torch", "2.13.0", "torch", STANDIN_TORCH)
    write_wheel(folder, "atlasvae-standin-dep", "1.0", "atlasvae_standin_dep", "VALUE = 42\n")
    return folder


def plan_for(user_dir: Path, wheels: Path | None, base: Path | str = sys.executable,
             requirements: list[str] = REQUIREMENTS) -> installer.InstallPlan:
    return installer.plan_install(base, user_dir, requirements, installer.default_build("linux"), wheelhouse=wheels)


def test_offline_install_builds_a_working_environment(tmp_path: Path, wheelhouse: Path) -> None:
    plan = plan_for(tmp_path / "user", wheelhouse)
    runner = installer.Installer()
    seen: list[installer.Progress] = []
    runner.start(plan)
    while runner.running:
        seen.append(runner.progress())
        time.sleep(0.05)
    ok, message = runner.wait() or (False, "no verdict")
    assert ok, message + "\n" + plan.log.read_text()
    python = locate.venv_python(plan.venv)
    assert locate.check_python(python) == (True, "torch imports")
    assert any(p.phase.startswith("Installing torch==2.13.0") for p in seen)
    fractions = [p.fraction for p in seen] + [runner.progress().fraction]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    log = plan.log.read_text()
    assert "--no-index" in log and "=== done" in log
    assert message.endswith("sees device cpu") and "torch 2.13.0+standin on Python 3." in message, message
    assert plan.requirements_file.read_text().split() == ["atlasvae-standin-dep==1.0"]


def test_the_plan_says_what_where_how_big_and_which_torch(tmp_path: Path, wheelhouse: Path) -> None:
    online = installer.plan_install(sys.executable, tmp_path, REQUIREMENTS, installer.torch_build("cu128"))
    text = "\n".join(online.summary())
    assert "torch==2.13.0 (NVIDIA CUDA 12.8)" in text and "atlasvae-standin-dep" in text
    assert str(tmp_path / "venv") in text and "cu128" in text and "MB to download" in text
    assert online.steps()[1].argv[-3:] == ["--index-url", installer.TORCH_INDEX + "cu128", "torch==2.13.0"]
    offline = "\n".join(plan_for(tmp_path, wheelhouse).summary())
    assert "nothing is downloaded" in offline and "MB to download" not in offline
    assert online.other_requirements == ["atlasvae-standin-dep==1.0"] and not list(tmp_path.iterdir()), \
        "planning writes nothing"


def test_each_platform_offers_builds_that_exist_there() -> None:
    assert [b.key for b in installer.builds_for("darwin")] == ["mps"]
    assert installer.default_build("linux").key == installer.default_build("win32").key == "cpu"
    assert {"cpu", "cu128"} <= {b.key for b in installer.builds_for("linux")}


@pytest.mark.parametrize("case,match", [
    ("missing", "Offline wheel folder .* does not exist"),
    ("empty", "holds no .whl files.*--wheelhouse"),
    ("url", "must start with https://"),
    ("notorch", "must name torch exactly once"),
    ("build", "unknown torch build 'rocm'"),
])
def test_bad_install_settings_are_named(tmp_path: Path, case: str, match: str) -> None:
    build = installer.default_build("linux")
    with pytest.raises(installer.InstallError, match=match):
        if case == "missing":
            installer.plan_install(sys.executable, tmp_path, REQUIREMENTS, build, wheelhouse=tmp_path / "nope")
        elif case == "empty":
            (tmp_path / "empty").mkdir()
            installer.plan_install(sys.executable, tmp_path, REQUIREMENTS, build, wheelhouse=tmp_path / "empty")
        elif case == "url":
            installer.plan_install(sys.executable, tmp_path, REQUIREMENTS, build, index_url="pytorch cpu")
        elif case == "notorch":
            installer.plan_install(sys.executable, tmp_path, REQUIREMENTS[1:], build)
        else:
            installer.torch_build("rocm")


def slow_python(tmp_path: Path) -> Path:
    """A stand-in for the base interpreter (an OS program): makes the venv folder, then hangs."""
    script = tmp_path / "slow-python"
    script.write_text("#!/bin/sh\nmkdir -p \"$3/bin\" && echo half > \"$3/half-made\" && echo started\nexec sleep 600\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in interpreter is a shell script")
def test_cancel_stops_the_install_and_leaves_no_half_environment(tmp_path: Path, wheelhouse: Path) -> None:
    plan = plan_for(tmp_path / "user", wheelhouse, base=slow_python(tmp_path))
    runner = installer.Installer()
    runner.start(plan)
    while not (plan.venv / "half-made").exists():
        assert runner.running, runner.progress()
        time.sleep(0.05)
    runner.cancel()
    assert runner.wait(timeout=60) == (False, "Install cancelled")
    assert not runner.running and not plan.venv.exists()
    assert "=== stopped: Install cancelled" in plan.log.read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in interpreter is a shell script")
def test_a_cancelled_reinstall_keeps_the_environment_that_was_there(tmp_path: Path, wheelhouse: Path) -> None:
    user = tmp_path / "user"
    good = locate.user_venv_dir(user)
    (good / "bin").mkdir(parents=True)
    (good / "marker").write_text("the working environment")
    runner = installer.Installer()
    plan = plan_for(user, wheelhouse, base=slow_python(tmp_path))
    assert "kept until the new one works" in "\n".join(plan.summary())
    runner.start(plan)
    while not (plan.venv / "half-made").exists():
        assert runner.running, runner.progress()
        time.sleep(0.05)
    runner.cancel()
    ok, message = runner.wait(timeout=60) or (True, "")
    assert not ok and "previous environment was kept" in message
    assert (good / "marker").read_text() == "the working environment" and not (good / "half-made").exists()
    assert not good.with_name("venv.previous").exists()


def test_a_failed_step_is_named_with_its_output_and_the_log(tmp_path: Path, wheelhouse: Path) -> None:
    plan = plan_for(tmp_path / "user", wheelhouse, requirements=["torch==2.13.0", "not-in-the-folder==9"])
    ok, message = installer.Installer().run(plan)
    assert not ok
    assert message.startswith("Installing the other packages failed (exit status 1)")
    assert "not-in-the-folder" in message and str(plan.log) in message
    assert not plan.venv.exists()


def test_a_second_start_while_running_is_refused(tmp_path: Path, wheelhouse: Path) -> None:
    runner = installer.Installer()
    plan = plan_for(tmp_path / "user", wheelhouse, base=slow_python(tmp_path))
    runner.start(plan)
    try:
        with pytest.raises(installer.InstallError, match="already running"):
            runner.start(plan)
    finally:
        runner.cancel()
        runner.wait(timeout=60)
    assert not plan.venv.exists()


def test_a_missing_interpreter_is_named(tmp_path: Path, wheelhouse: Path) -> None:
    plan = plan_for(tmp_path / "user", wheelhouse, base="/nonexistent/python")
    ok, message = installer.Installer().run(plan)
    assert not ok and message.startswith("Creating the environment: cannot run /nonexistent/python")
