"""Install Backend Dependencies in real bpy: asks first, honours Blender's online-access setting, installs
offline from a wheel folder of stand-in packages built here, reports progress, and the preferences show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from .test_installer import STANDIN_TORCH, write_wheel
from .ui_recorder import RecordingLayout, new_log


@pytest.fixture(scope="module")
def standin_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny wheel per pinned runtime requirement (same name and version), so pip resolves offline."""
    from blender_addon.bpyfree import locate

    folder = tmp_path_factory.mktemp("standin-wheels")
    for line in locate.runtime_requirements(locate.requirements_file()):
        name, version = line.split("==")
        module = "torch" if name == "torch" else f"standin_{name.replace('-', '_')}"
        write_wheel(folder, name, version, module, STANDIN_TORCH if name == "torch" else "")
    return folder


@pytest.fixture()
def prefs(addon: Any, bpy_module: Any, tmp_path: Path) -> Iterator[Any]:
    """The add-on's preferences with a fresh user folder; online access and settings restored after."""
    prefs = bpy_module.context.preferences.addons["blender_addon"].preferences
    system = bpy_module.context.preferences.system
    saved = (prefs.user_dir, prefs.wheelhouse, prefs.index_url, system.use_online_access)
    prefs.user_dir = str(tmp_path / "user")
    yield prefs
    prefs.user_dir, prefs.wheelhouse, prefs.index_url, system.use_online_access = saved
    state = bpy_module.context.window_manager.atlasvae_runtime
    state.install_line, state.install_phase, state.install_progress = "", "", 0.0


class _Self:
    """`self` for a draw(): the real preferences (or operator) for data, only `layout` stood in."""

    def __init__(self, real: Any, layout: RecordingLayout) -> None:
        self._real, self.layout = real, layout

    def __getattr__(self, name: str) -> Any:
        value = getattr(type(self._real), name, None)
        if callable(value) and hasattr(value, "__get__"):
            return value.__get__(self, type(self))
        return getattr(self._real, name)


def draw_prefs(bpy: Any, prefs: Any) -> dict[str, list[Any]]:
    log = new_log()
    type(prefs).draw(_Self(prefs, RecordingLayout(bpy, log)), bpy.context)
    return log


def test_with_online_access_off_and_no_wheel_folder_it_refuses_naming_the_setting(prefs: Any,
                                                                                   bpy_module: Any) -> None:
    bpy_module.context.preferences.system.use_online_access = False
    prefs.wheelhouse = ""
    with pytest.raises(RuntimeError, match="'Allow Online Access' is off.*Offline Wheel Folder"):
        bpy_module.ops.atlasvae.install_backend()
    assert not Path(prefs.user_dir, "venv").exists()
    labels = draw_prefs(bpy_module, prefs)["labels"]
    assert any("Online access is off" in label for label in labels)


def test_offline_install_creates_the_environment_and_the_preferences_show_it(
        prefs: Any, bpy_module: Any, standin_wheels: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from blender_addon.bpyfree import locate

    bpy_module.context.preferences.system.use_online_access = False
    prefs.wheelhouse = str(standin_wheels)
    assert bpy_module.ops.atlasvae.install_backend() == {"FINISHED"}
    venv = Path(prefs.user_dir) / "venv"
    assert locate.check_python(locate.venv_python(venv)) == (True, "torch imports")
    state = bpy_module.context.window_manager.atlasvae_runtime
    assert state.install_progress == 1.0 and state.install_phase == "Checking the environment"
    assert "Backend environment installed" in state.install_line and "sees device cpu" in state.install_line
    printed = capsys.readouterr().out
    assert "Successfully installed" in printed
    drawn = draw_prefs(bpy_module, prefs)
    assert {"torch_build", "index_url", "wheelhouse"} <= set(drawn["props"])
    assert {"atlasvae.install_backend", "atlasvae.cancel_install", "atlasvae.open_install_log"} <= \
        set(drawn["operators"])
    assert any(label.startswith(f"Installed: {venv}") for label in drawn["labels"])
    assert "--no-index" in (Path(prefs.user_dir) / "logs" / "install.log").read_text()


def test_the_confirmation_dialog_says_what_where_and_how_big(prefs: Any, bpy_module: Any) -> None:
    from blender_addon import preferences

    bpy_module.context.preferences.system.use_online_access = True
    prefs.wheelhouse = ""
    prefs.torch_build = "cpu"
    log = new_log()
    preferences.ATLASVAE_OT_install_backend.draw(_Self(prefs, RecordingLayout(bpy_module, log)), bpy_module.context)
    text = "\n".join(log["labels"])
    assert "torch==2.13.0 (CPU)" in text and f"Into: {Path(prefs.user_dir) / 'venv'}" in text
    assert "whl/cpu" in text and "MB to download" in text and "MB on disk" in text


def test_a_bad_wheel_folder_is_named(prefs: Any, bpy_module: Any, tmp_path: Path) -> None:
    prefs.wheelhouse = str(tmp_path / "no-such-folder")
    with pytest.raises(RuntimeError, match="Offline wheel folder .*no-such-folder does not exist"):
        bpy_module.ops.atlasvae.install_backend()
