# mypy: disable-error-code="valid-type"
"""Add-on properties: per-scene settings (Scene.atlasvae) and per-session runtime state
(WindowManager.atlasvae_runtime: backend reports and fine-tune progress, never saved nor undone).

The model list is scanned from disk (bundled models, the user models folder with fine-tuned
outputs) without the backend, so it is available before the backend starts.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import locate
from .preferences import addon_settings

RESOLUTION_PRESETS = (("642", "642 (level 3)", "Icosphere level 3: 642 vertices"),
                      ("2562", "2562 (level 4)", "Icosphere level 4: 2562 vertices"),
                      ("10242", "10242 (level 5)", "Icosphere level 5: 10242 vertices"),
                      ("CUSTOM", "Custom", "Any vertex count (the backend snaps to its template)"))
NO_MODEL = "NONE"

_model_entries: list[locate.ModelEntry] = []
_model_items: list[tuple[str, str, str, str, int]] = []


def refresh_models() -> list[locate.ModelEntry]:
    """Rescan the model folders; keeps the enum items alive (Blender needs the strings referenced)."""
    prefs = addon_settings()
    roots: list[tuple[Path | None, str]] = [(locate.bundled_models_dir(), "bundled"),
                                            (locate.user_models_dir(prefs.user_dir), "user")]
    entries = locate.find_models(roots)
    _model_entries[:] = entries
    items = [(str(e.path), e.name, f"{e.name} ({e.source}): {e.path}",
              "FILE_FOLDER" if e.source == "user" else "MESH_ICOSPHERE", _enum_number(str(e.path)))
             for e in entries]
    if not items:
        items = [(NO_MODEL, "No models found", "Add a model folder or fine-tune one", "ERROR", 0)]
    _model_items[:] = items
    return entries


def _enum_number(path: str) -> int:
    """A stable enum number per path, so a saved choice survives new models joining the list."""
    return zlib.crc32(path.encode("utf-8")) & 0x3FFFFFFF or 1


def model_items(_self: object, _context: bpy.types.Context | None) -> list[tuple[str, str, str, str, int]]:
    """EnumProperty items callback: the cached list (scan once if it was never scanned)."""
    if not _model_items:
        refresh_models()
    return _model_items


def model_entries() -> list[locate.ModelEntry]:
    """Models found by the last scan."""
    if not _model_items:
        refresh_models()
    return list(_model_entries)


def models_dirs() -> tuple[Path, ...]:
    """Folders the backend should list models from."""
    prefs = addon_settings()
    dirs = [locate.bundled_models_dir(), locate.user_models_dir(prefs.user_dir)]
    return tuple(d for d in dirs if d is not None)


class AtlasVAESettings(bpy.types.PropertyGroup):
    """What the sidebar edits: model choice and the parameters of each action."""

    model: EnumProperty(name="Model", description="Model used for every action", items=model_items)
    count: IntProperty(name="Count", description="Number of shapes to sample", default=4, min=1, max=256,
                       soft_max=64)
    seed: IntProperty(name="Seed", description="Random seed: the same seed and model give the same shapes",
                      default=0, min=0)
    random_seed: BoolProperty(name="Random Seed", description="Pick a new seed each time (written back to Seed)",
                              default=False)
    temperature: FloatProperty(name="Temperature", description="Spread of the latent samples: lower is "
                               "closer to the average shape", default=1.0, min=0.0, max=10.0, soft_max=2.0)
    resolution_preset: EnumProperty(name="Resolution", description="Vertices of each generated mesh",
                                    items=RESOLUTION_PRESETS, default="2562")
    custom_resolution: IntProperty(name="Vertices", description="Vertex count of each generated mesh",
                                   default=2562, min=12, max=200_000)
    spacing: FloatProperty(name="Spacing", description="Distance between sampled shapes on the grid",
                           default=2.5, min=0.0, subtype="DISTANCE")
    steps: IntProperty(name="Steps", description="Shapes from the first to the second object, both included",
                       default=5, min=2, max=256)
    variation_count: IntProperty(name="Count", description="Number of variations", default=4, min=1, max=256)
    spread: FloatProperty(name="Spread", description="How far variations stray from the original's code",
                          default=0.5, min=0.0, max=10.0, soft_max=2.0)
    variation_seed: IntProperty(name="Seed", description="Random seed for variations", default=0, min=0)
    finetune_data: StringProperty(name="Folder", description="Folder of meshes to fine-tune on (OBJ, STL, "
                                  "PLY, OFF, GLB/GLTF); never modified", subtype="DIR_PATH")
    finetune_epochs: IntProperty(name="Epochs", description="Passes over the folder", default=10, min=1,
                                 max=100_000, soft_max=500)
    finetune_name: StringProperty(name="Name", description="Name of the new model (its folder in the user "
                                  "models folder)", default="my-model")

    def resolution(self) -> int:
        """Vertex count requested from the backend."""
        if self.resolution_preset == "CUSTOM":
            return int(self.custom_resolution)
        return int(self.resolution_preset)

    def model_path(self) -> str | None:
        """Folder of the chosen model; the first listed one if the saved choice is gone; None if none."""
        value = str(self.model)
        if value and value != NO_MODEL:
            return value
        entries = model_entries()
        return str(entries[0].path) if entries else None


class AtlasVAERuntime(bpy.types.PropertyGroup):
    """Session state shown in the UI: last report and fine-tune progress (not saved, not undone)."""

    last_report: StringProperty(name="Last Report", options={"SKIP_SAVE"})
    job_id: StringProperty(name="Job", options={"SKIP_SAVE"})
    job_state: StringProperty(name="Job State", options={"SKIP_SAVE"})
    job_out: StringProperty(name="Output", options={"SKIP_SAVE"})
    epoch: IntProperty(name="Epoch", options={"SKIP_SAVE"})
    epochs: IntProperty(name="Epochs", options={"SKIP_SAVE"})
    loss: FloatProperty(name="Loss", options={"SKIP_SAVE"})
    eta_s: FloatProperty(name="ETA (s)", options={"SKIP_SAVE"})
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, options={"SKIP_SAVE"}, subtype="FACTOR")
    job_message: StringProperty(name="Message", options={"SKIP_SAVE"})
    install_running: BoolProperty(name="Installing", options={"SKIP_SAVE"})
    install_line: StringProperty(name="Install Output", options={"SKIP_SAVE"})

    def job_running(self) -> bool:
        """True while a fine-tune job is submitted or running."""
        return self.job_state in ("submitting", "running", "cancelling")


def settings(context: bpy.types.Context) -> AtlasVAESettings:
    """The scene's AtlasVAE settings."""
    scene = context.scene
    if scene is None:
        raise RuntimeError("AtlasVAE needs a scene in the current context")
    return scene.atlasvae  # type: ignore[attr-defined, no-any-return]


def runtime() -> AtlasVAERuntime | None:
    """Session runtime state (None before registration)."""
    wm = bpy.context.window_manager
    return getattr(wm, "atlasvae_runtime", None) if wm is not None else None


CLASSES = (AtlasVAESettings, AtlasVAERuntime)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.atlasvae = PointerProperty(type=AtlasVAESettings)  # type: ignore[attr-defined]
    bpy.types.WindowManager.atlasvae_runtime = PointerProperty(type=AtlasVAERuntime)  # type: ignore[attr-defined]
    refresh_models()


def unregister() -> None:
    del bpy.types.WindowManager.atlasvae_runtime  # type: ignore[attr-defined]
    del bpy.types.Scene.atlasvae  # type: ignore[attr-defined]
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    _model_items.clear()
    _model_entries.clear()
