"""Registering the add-on in real bpy: enable/disable cycles, preferences, properties, panels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import ADDON_MODULE

OPERATORS = ("sample", "reconstruct", "interpolate", "variations", "finetune_start", "finetune_cancel",
             "backend_start", "backend_restart", "backend_stop", "release_memory", "load_model",
             "refresh_models", "install_backend", "cancel", "open_log", "open_folder")
PANELS = ("VIEW3D_PT_atlasvae", "VIEW3D_PT_atlasvae_model", "VIEW3D_PT_atlasvae_sample", "VIEW3D_PT_atlasvae_reconstruct",
          "VIEW3D_PT_atlasvae_interpolate", "VIEW3D_PT_atlasvae_variations", "VIEW3D_PT_atlasvae_finetune")


def registered(bpy: Any) -> dict[str, bool]:
    return {
        "scene": hasattr(bpy.types.Scene, "atlasvae"),
        "runtime": hasattr(bpy.types.WindowManager, "atlasvae_runtime"),
        "operators": all(hasattr(bpy.types, f"ATLASVAE_OT_{name}") for name in OPERATORS),
        "panels": all(hasattr(bpy.types, name) for name in PANELS),
        "prefs": ADDON_MODULE in bpy.context.preferences.addons,
    }


def test_enable_disable_twice(addon: Any, bpy_module: Any, user_dir: Path) -> None:
    import addon_utils

    bpy = bpy_module
    assert all(registered(bpy).values()), registered(bpy)
    for _ in range(2):
        addon_utils.disable(ADDON_MODULE, default_set=True)
        assert not any(registered(bpy).values()), registered(bpy)
        assert addon_utils.enable(ADDON_MODULE, default_set=True) is not None
        assert all(registered(bpy).values()), registered(bpy)
    from blender_addon import jobs

    assert jobs.backend.client is None, "registering must not start the backend (start on load is off)"
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.user_dir = str(user_dir)
    prefs.device = "cpu"


def test_preferences_use_the_package_name(addon: Any, bpy_module: Any, user_dir: Path) -> None:
    from blender_addon.preferences import AtlasVAEPreferences, addon_settings

    prefs = bpy_module.context.preferences.addons[ADDON_MODULE].preferences
    assert AtlasVAEPreferences.bl_idname == ADDON_MODULE
    assert isinstance(prefs, AtlasVAEPreferences)
    settings = addon_settings()
    assert settings.user_dir == user_dir and settings.device == "cpu"
    assert prefs.bl_rna.properties["device"].enum_items.keys() == ["auto", "cpu", "cuda", "mps"]


def test_model_list_offers_the_test_model(addon: Any, bpy_module: Any, models_dir: Path) -> None:
    from blender_addon.properties import model_entries

    entries = model_entries()
    assert [(e.name, e.source) for e in entries] == [("tiny", "bundled")]
    scene = bpy_module.context.scene
    scene.atlasvae.model = "bundled/tiny"
    assert scene.atlasvae.model_path() == str((models_dir / "tiny").resolve())


def test_operators_that_add_objects_are_undoable(addon: Any, bpy_module: Any) -> None:
    for name in ("sample", "reconstruct", "interpolate", "variations"):
        options = getattr(bpy_module.types, f"ATLASVAE_OT_{name}").bl_options
        assert {"REGISTER", "UNDO"} <= set(options), (name, options)



REOPEN_SCRIPT = r"""
import os
import sys

import bpy
import addon_utils

repo, root_a, root_b, root_c, blend = sys.argv[1:6]
sys.path.insert(0, repo)
os.environ["ATLASVAE_MODELS_DIR"] = root_a
assert addon_utils.enable("blender_addon", default_set=True) is not None
from blender_addon import properties

s = bpy.context.scene.atlasvae
print("DEFAULT", s.model, s.family, s.model_path())
s.model = "bundled/second"
print("CHOSEN", s.model, s.model_path())
bpy.ops.wm.save_as_mainfile(filepath=blend)
for label, root in (("MOVED", root_b), ("MISSING", root_c)):
    os.environ["ATLASVAE_MODELS_DIR"] = root
    properties.refresh_models()
    bpy.ops.wm.open_mainfile(filepath=blend)
    s = bpy.context.scene.atlasvae
    print(label, s.model, s.family, s.model_path())
addon_utils.disable("blender_addon", default_set=True)
"""


def test_a_saved_model_choice_means_the_same_model_elsewhere_and_never_warns(tmp_path: Path, models_dir: Path) -> None:
    """Model choices are saved as stable keys: a .blend opened where the models folder lives elsewhere
    keeps its model, one opened where the model is missing shows the first model, and Blender never
    prints "matches no enum" (the whole process output is read)."""
    import shutil
    import subprocess
    import sys

    from .conftest import REPO

    roots = {name: tmp_path / name for name in ("a", "b", "c")}
    for root, names in ((roots["a"], ("first", "second")), (roots["b"], ("first", "second")), (roots["c"], ("first",))):
        for name in names:
            shutil.copytree(models_dir / "tiny", root / name)
    proc = subprocess.run([sys.executable, "-c", REOPEN_SCRIPT, str(REPO), *(str(r) for r in roots.values()),
                           str(tmp_path / "scene.blend")], capture_output=True, text=True, cwd=str(tmp_path))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "matches no enum" not in output, output[-3000:]
    lines = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()
             if line.split() and line.split()[0] in ("DEFAULT", "CHOSEN", "MOVED", "MISSING")}
    assert lines["DEFAULT"] == ["bundled/first", "ANY", str((roots["a"] / "first").resolve())]
    assert lines["CHOSEN"] == ["bundled/second", str((roots["a"] / "second").resolve())]
    assert lines["MOVED"] == ["bundled/second", "ANY", str((roots["b"] / "second").resolve())]
    assert lines["MISSING"] == ["bundled/first", "ANY", str((roots["c"] / "first").resolve())]
