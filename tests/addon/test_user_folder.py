"""Fine-tuned models and the backend environment live in a folder outside Blender's per-version ones
(issue 28, item 7), so a Blender upgrade keeps them; models in the old per-version extension folder are
still listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import ADDON_MODULE


def test_the_default_user_folder_does_not_depend_on_blenders_version(
        addon: Any, bpy_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from blender_addon.bpyfree import locate
    from blender_addon.preferences import addon_settings

    prefs = bpy_module.context.preferences.addons[ADDON_MODULE].preferences
    kept = prefs.user_dir
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("APPDATA", str(tmp_path))
    prefs.user_dir = ""
    try:
        folder = addon_settings().user_dir
        assert folder == locate.fallback_user_dir()
        assert folder.is_relative_to(tmp_path), folder
        version = "{}.{}".format(*bpy_module.app.version[:2])
        assert version not in folder.parts, f"{folder} is per Blender version"
        assert locate.user_venv_dir(folder).parent == folder and locate.user_models_dir(folder).parent == folder
    finally:
        prefs.user_dir = kept
