"""Registering the add-on in real bpy: enable/disable cycles, preferences, properties, panels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import ADDON_MODULE

OPERATORS = ("sample", "reconstruct", "interpolate", "variations", "finetune_start", "finetune_cancel",
             "backend_start", "backend_restart", "backend_stop", "release_memory", "load_model",
             "refresh_models", "install_backend")
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
    scene.atlasvae.model = str((models_dir / "tiny").resolve())
    assert scene.atlasvae.model_path() == str((models_dir / "tiny").resolve())


def test_operators_that_add_objects_are_undoable(addon: Any, bpy_module: Any) -> None:
    for name in ("sample", "reconstruct", "interpolate", "variations"):
        options = getattr(bpy_module.types, f"ATLASVAE_OT_{name}").bl_options
        assert {"REGISTER", "UNDO"} <= set(options), (name, options)

