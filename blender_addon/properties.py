# mypy: disable-error-code="valid-type"
"""Per-scene settings (Scene.atlasvae): the model choice and the sidebar's last values, which every
operator takes as the defaults of its own options (runtime state lives in runtime.py).

The model list is scanned from disk (bundled models, the user models folder with fine-tuned
outputs) without the backend, so it is available before the backend starts.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .bpyfree import locate
from .preferences import addon_settings, earlier_user_dirs

RESOLUTION_PRESETS = (("642", "642 (level 3)", "Icosphere level 3: 642 vertices"),
                      ("2562", "2562 (level 4)", "Icosphere level 4: 2562 vertices"),
                      ("10242", "10242 (level 5)", "Icosphere level 5: 10242 vertices"),
                      ("CUSTOM", "Custom", "Any vertex count (the backend snaps to its template)"))
SHADING = (("SMOOTH", "Smooth", "Smooth shading"), ("FLAT", "Flat", "Flat shading: every triangle visible"))
SIZE_MODES = (  # identifiers are the backend's size modes (limits.SIZE_MODES); a test pins them
    ("real", "Real", "Each shape at its family's typical size in metres, measured on the model's training meshes "
     "(a chair about as tall as a chair, a building as big as a building); models that record no sizes give "
     "unit size"),
    ("unit", "Unit", "Each shape within a sphere of radius 1, whatever its family"))
SIZE_DESCRIPTION = ("How big sampled shapes come out: Real gives each its family's typical size in metres, "
                    "standing on the 3D cursor's floor; Unit fits each within a sphere of radius 1. Reconstruct, "
                    "Interpolate and Variations keep the size and place of the selected objects")
# What each result is: the backend's closed mesh or the decoded patches. Identifiers, bounds and defaults are
# backend/limits.py's (SURFACE_CHOICES, *_FACE_BUDGET); tests/addon/test_surface.py pins them to it.
SURFACES = (("auto", "Auto", "Closed for models made of square patches (the bundled base), the model's own mesh for "
             "sphere models, which is already one closed surface"),
            ("closed", "Closed", "One closed, watertight mesh per result, made by the backend within the Face "
             "Budget; it has no UVs (unwrap it as you like)"),
            ("patches", "Patches", "The model's own surface with the template's UVs: open, overlapping square "
             "patches for a patch model (for UV-template work and shape keys)"))
SURFACE_DESCRIPTION = ("What each result is: one closed, watertight mesh made by the backend (no UVs), or the "
                       "decoded patches with the template's UVs. Interpolate as shape keys always gets the "
                       "patches, whose vertices match from step to step")
DEFAULT_SURFACE = "auto"
MIN_FACE_BUDGET, MAX_FACE_BUDGET, DEFAULT_FACE_BUDGET = 500, 200_000, 20_000
FACE_BUDGET_DESCRIPTION = "At most this many faces in each closed mesh: more keeps finer detail and takes longer"
FINETUNE_SOURCES = (("FOLDER", "Folder", "Mesh files in a folder"),
                    ("SELECTED", "Selected Objects", "The selected mesh objects, modifiers applied"),
                    ("COLLECTION", "Collection", "The mesh objects of a collection, modifiers applied"))
FREEZE_GROUPS = (  # identifiers are the backend's layer-group names (finetune --freeze); a test pins them
    ("encoder", "Encoder", "Keep the whole encoder fixed (the layers that read a mesh and turn it into a shape "
     "code): only the decoder learns your meshes' surfaces. Best with few meshes (a few dozen or fewer)", "", 1),
    ("features", "Features", "Keep the encoder's point layers fixed (what it notices in a mesh) while its code "
     "heads and the decoder train: a middle way for a small set of meshes", "", 2),
    ("heads", "Heads", "Keep the encoder's last layers fixed (they turn what it noticed into the shape code and "
     "its spread) while the rest trains", "", 4),
    ("decoder", "Decoder", "Keep the decoder fixed (it bends the template into a surface): only the encoder "
     "learns, so results stay surfaces the starting model can already make", "", 8))
FREEZE_DESCRIPTION = ("Parts of the chosen model that stay as they are while the rest trains; none: every "
                      "weight trains. With few meshes, keep the Encoder fixed")
NO_MODEL = "NONE"
ANY_FAMILY = "ANY"
_ANY_ITEM = (ANY_FAMILY, "Any", "Sample from the model's whole prior, any family", 0)

_model_entries: list[locate.ModelEntry] = []
_model_items: list[tuple[str, str, str, str, int]] = []
_family_cache: dict[str, tuple[tuple[int, int], list[str], list[tuple[str, str, str, int]]]] = {}


def refresh_models() -> list[locate.ModelEntry]:
    """Rescan the model folders; keeps the enum items alive (Blender needs the strings referenced).

    Items are identified by each model's stable key ("bundled/base", "user/my-model"), never by an
    absolute path, so a saved choice means the same model on another machine."""
    prefs = addon_settings()
    roots: list[tuple[Path | None, str]] = [(locate.bundled_models_dir(), "bundled"),
                                            (locate.user_models_dir(prefs.user_dir), "user")]
    roots += [(locate.user_models_dir(old), "earlier") for old in earlier_user_dirs()
              if locate.user_models_dir(old) != locate.user_models_dir(prefs.user_dir)]
    entries = []
    keys: set[str] = set()
    for entry in locate.find_models(roots):
        key, n = entry.key, 2
        while key in keys:  # two roots with a folder of the same name: keep both, distinctly
            key, n = f"{entry.key}#{n}", n + 1
        keys.add(key)
        entries.append(replace(entry, key=key))
    _model_entries[:] = entries
    items = [(e.key, e.name, f"{e.name} ({e.source}): {e.path}",
              "FILE_FOLDER" if e.source == "user" else "MESH_ICOSPHERE", i)
             for i, e in enumerate(entries)]
    if not items:
        items = [(NO_MODEL, "No models found", "Add a model folder or fine-tune one", "ERROR", 0)]
    _model_items[:] = items
    return entries


def model_items(_self: object, _context: bpy.types.Context | None) -> list[tuple[str, str, str, str, int]]:
    """EnumProperty items callback: the cached list (scan once if it was never scanned)."""
    if not _model_items:
        refresh_models()
    return _model_items


def _get_model(self: "AtlasVAESettings") -> int:
    """The enum value of the saved model key; the first model when that key is not here."""
    items = model_items(self, None)
    for identifier, _name, _desc, _icon, number in items:
        if identifier == self.model_key:
            return number
    return items[0][4]


def _set_model(self: "AtlasVAESettings", value: int) -> None:
    for identifier, _name, _desc, _icon, number in model_items(self, None):
        if number == value and identifier != NO_MODEL:
            self.model_key = identifier


def entry_for_path(path: str | Path) -> locate.ModelEntry | None:
    """The listed model whose folder is `path` (after a rescan), or None."""
    wanted = Path(path).resolve()
    return next((e for e in model_entries() if e.path == wanted), None)


def model_entries() -> list[locate.ModelEntry]:
    """Models found by the last scan."""
    if not _model_items:
        refresh_models()
    return list(_model_entries)


def models_dirs() -> tuple[Path, ...]:
    """Folders the backend should list models from."""
    prefs = addon_settings()
    dirs = [d for d in (locate.bundled_models_dir(), locate.user_models_dir(prefs.user_dir)) if d is not None]
    earlier = [locate.user_models_dir(old) for old in earlier_user_dirs()]
    return tuple(dirs + [d for d in earlier if d.is_dir() and d not in dirs])


def _read_labels(model_path: str) -> list[str]:
    """The model's family labels, without the reserved "ANY" (the Any item's identifier)."""
    return [label for label in locate.config_labels(Path(model_path)) if label != ANY_FAMILY]


def _family_entry(model_path: str | None) -> tuple[list[str], list[tuple[str, str, str, int]]]:
    """(labels, enum items) of a model folder, cached per path and config.json mtime and size, so
    redrawing the panel costs one stat; the items stay referenced as Blender requires."""
    if not model_path or model_path == NO_MODEL:
        return [], [_ANY_ITEM]
    config_path = Path(model_path) / locate.CONFIG_FILE
    try:
        st = os.stat(config_path)
    except OSError:
        _family_cache.pop(model_path, None)
        return [], [_ANY_ITEM]
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _family_cache.get(model_path)
    if cached is not None and cached[0] == stamp:
        return cached[1], cached[2]
    labels = _read_labels(model_path)
    items = [_ANY_ITEM]
    for i, label in enumerate(labels, start=1):
        items.append((label, label, f"Sample a {label} from this family's own prior", i))
    _family_cache[model_path] = (stamp, labels, items)
    return labels, items


def model_labels(model_path: str | None) -> list[str]:
    """Family labels a model folder offers (its config.json "labels"); [] for older models."""
    return list(_family_entry(model_path)[0])


def family_items(self: "AtlasVAESettings", _context: bpy.types.Context | None) -> list[tuple[str, str, str, int]]:
    """EnumProperty items callback: "Any" plus the chosen model's labels."""
    return _family_entry(self.model_path())[1]


def _get_family(self: "AtlasVAESettings") -> int:
    """The enum value of the saved family; Any when the chosen model does not offer it."""
    for identifier, _name, _desc, number in family_items(self, None):
        if identifier == self.family_key:
            return number
    return 0


def _set_family(self: "AtlasVAESettings", value: int) -> None:
    for identifier, _name, _desc, number in family_items(self, None):
        if number == value:
            self.family_key = identifier


FIT_MODES = (("encoder", "Encoder", "One pass through the encoder: the nearest shape the model knows (instant)"),
             ("latent", "Latent", "Optimise the shape code against the mesh (about 2 s): the model's own version"),
             ("full", "Full", "Then also adapt a private copy of the decoder (about 5 s): faithful to the mesh"))
ENDPOINT_FITS = FIT_MODES[:2]  # the decoder stays the shared one, so in-between shapes remain the model's


class AtlasVAESettings(bpy.types.PropertyGroup):
    """What the sidebar edits: model choice and the parameters of each action."""

    model_key: StringProperty(name="Model Key", description="Saved model choice: its source and folder name",
                              options={"HIDDEN"})
    model: EnumProperty(name="Model", description="Model used for every action", items=model_items,
                        get=_get_model, set=_set_model)
    family_key: StringProperty(name="Family Key", description="Saved family choice", default=ANY_FAMILY,
                               options={"HIDDEN"})
    family: EnumProperty(name="Family", description="Shape family to sample from (the labels the model was "
                         "trained on); Any samples from the whole model", items=family_items,
                         get=_get_family, set=_set_family)
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
    size: EnumProperty(name="Size", description=SIZE_DESCRIPTION, items=SIZE_MODES, default="real")
    spacing: FloatProperty(name="Spacing", description="Distance between sampled shapes on the grid (more when "
                           "the widest shape needs it, so big shapes never overlap)",
                           default=2.5, min=0.0, subtype="DISTANCE")
    steps: IntProperty(name="Steps", description="Shapes from the first to the second object, both included",
                       default=5, min=2, max=256)
    fit: EnumProperty(name="Fit", description="How closely Reconstruct follows each mesh", items=FIT_MODES,
                      default="full")
    endpoint_fit: EnumProperty(name="Fit", description="How Interpolate and Variations read their meshes",
                               items=ENDPOINT_FITS, default="latent")
    variation_count: IntProperty(name="Count", description="Number of variations", default=4, min=1, max=256)
    spread: FloatProperty(name="Spread", description="How far variations stray from the original's code",
                          default=0.5, min=0.0, max=10.0, soft_max=2.0)
    variation_seed: IntProperty(name="Seed", description="Random seed for variations", default=0, min=0)
    shading: EnumProperty(name="Shading", description="Shading of new meshes", items=SHADING, default="SMOOTH")
    add_material: BoolProperty(name="Material", description="Give new meshes the shared AtlasVAE material",
                               default=True)
    surface: EnumProperty(name="Surface", description=SURFACE_DESCRIPTION, items=SURFACES, default=DEFAULT_SURFACE)
    face_budget: IntProperty(name="Face Budget", description=FACE_BUDGET_DESCRIPTION, default=DEFAULT_FACE_BUDGET,
                             min=MIN_FACE_BUDGET, max=MAX_FACE_BUDGET, soft_max=100_000)
    as_shape_keys: BoolProperty(name="As Shape Keys", description="Interpolate into one object with a shape key "
                                "per step (animatable) instead of one object per step", default=False)
    finetune_source: EnumProperty(name="Train On", description="Where the fine-tune's meshes come from",
                                  items=FINETUNE_SOURCES, default="FOLDER")
    finetune_data: StringProperty(name="Folder", description="Folder of meshes to fine-tune on (OBJ, STL, "
                                  "PLY, OFF, GLB/GLTF); never modified", subtype="DIR_PATH")
    finetune_collection: PointerProperty(name="Collection", type=bpy.types.Collection,
                                         description="Collection whose mesh objects (and those of its children) "
                                         "to fine-tune on")
    finetune_epochs: IntProperty(name="Epochs", description="Passes over the folder", default=10, min=1,
                                 max=100_000, soft_max=500)
    finetune_name: StringProperty(name="Name", description="Name of the new model (its folder in the user "
                                  "models folder)", default="my-model")
    finetune_freeze: EnumProperty(name="Keep Fixed", description=FREEZE_DESCRIPTION, items=FREEZE_GROUPS,
                                  options={"ENUM_FLAG"}, default=set())

    def resolution(self) -> int:
        """Vertex count requested from the backend."""
        if self.resolution_preset == "CUSTOM":
            return int(self.custom_resolution)
        return int(self.resolution_preset)

    def sample_label(self) -> str | None:
        """The family to send with a sample request; None for "Any" or a choice the model no longer offers."""
        value = str(self.family_key)
        if not value or value == ANY_FAMILY:
            return None
        return value if value in model_labels(self.model_path()) else None

    def use_model(self, path: str | Path) -> None:
        """Choose the listed model in folder `path` (rescanning once); ValueError naming it otherwise."""
        entry = entry_for_path(path)
        if entry is None:
            refresh_models()
            entry = entry_for_path(path)
        if entry is None:
            raise ValueError(f"{path} is not a model folder in the bundled or user models folder")
        self.model_key = entry.key

    def model_path(self) -> str | None:
        """Folder of the chosen model; the first listed one if the saved choice is gone; None if none."""
        entries = model_entries()
        chosen = next((e for e in entries if e.key == self.model_key), entries[0] if entries else None)
        return str(chosen.path) if chosen is not None else None


def settings(context: bpy.types.Context) -> AtlasVAESettings:
    """The scene's AtlasVAE settings."""
    scene = context.scene
    if scene is None:
        raise RuntimeError("AtlasVAE needs a scene in the current context")
    return scene.atlasvae  # type: ignore[attr-defined, no-any-return]


CLASSES = (AtlasVAESettings,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.atlasvae = PointerProperty(type=AtlasVAESettings)  # type: ignore[attr-defined]
    refresh_models()


def unregister() -> None:
    del bpy.types.Scene.atlasvae  # type: ignore[attr-defined]
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    _model_items.clear()
    _model_entries.clear()
    _family_cache.clear()
