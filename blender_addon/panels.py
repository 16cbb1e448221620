"""The "AtlasVAE" sidebar tab in the 3D viewport: one parent panel (model choice, the common actions,
progress with Cancel, the last message in full) and a sub-panel per job. Drawing only reads state;
operators change it. Buttons name operators by id; the UI tests check every one is registered."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import bpy

from . import feedback, jobs
from .bpyfree import backend_process, locate
from .feedback import WRAP, wrap
from .operators import finetune
from .operators.common import selected_meshes
from .preferences import addon_settings
from .properties import AtlasVAESettings, settings
from .runtime import AtlasVAERuntime, runtime

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import IconItems

STATUS_ICONS: dict[str, IconItems] = {"stopped": "PAUSE", "starting": "SORTTIME", "ready": "CHECKMARK",
                                      "busy": "SORTTIME", "error": "ERROR"}
LEVEL_ICONS: dict[str, IconItems] = {"ERROR": "ERROR", "WARNING": "INFO", "INFO": "CHECKMARK"}

_card_cache: dict[str, tuple[int, list[tuple[str, str]]]] = {}


def _format_eta(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def cached_model_card(path: str | None) -> list[tuple[str, str]]:
    """The model card facts of a model folder, cached per config.json modification time."""
    if not path:
        return []
    try:
        stamp = os.stat(Path(path) / locate.CONFIG_FILE).st_mtime_ns
    except OSError:
        return []
    cached = _card_cache.get(path)
    if cached is None or cached[0] != stamp:
        cached = (stamp, locate.model_card(Path(path)))
        _card_cache[path] = cached
    return cached[1]


def _resolution(layout: bpy.types.UILayout, s: AtlasVAESettings) -> None:
    layout.prop(s, "resolution_preset")
    if s.resolution_preset == "CUSTOM":
        layout.prop(s, "custom_resolution")


def _look(layout: bpy.types.UILayout, s: AtlasVAESettings) -> None:
    """Shading, material, Surface and its face budget (greyed out for Patches)."""
    row = layout.row(align=True)
    row.prop(s, "shading", expand=True)
    row.prop(s, "add_material", text="", icon="MATERIAL")
    layout.prop(s, "surface")
    budget = layout.row()
    budget.active = s.surface != "patches"
    budget.prop(s, "face_budget")


def _activity(layout: bpy.types.UILayout) -> None:
    """Progress of the running action with its Cancel button, and of a running fine-tune."""
    state = runtime()
    if state is None:
        return
    if jobs.pending():
        row = layout.row(align=True)
        row.progress(factor=float(state.task_progress), type="BAR",
                     text=state.task_text or state.task_label or "Working...")
        row.operator("atlasvae.cancel", text="", icon="CANCEL")
    if state.job_running():
        row = layout.row(align=True)
        row.progress(factor=float(state.progress), type="BAR", text=f"Fine-tune: epoch {state.epoch}/{state.epochs}")
        row.operator("atlasvae.finetune_cancel", text="", icon="CANCEL")


def _last_report(layout: bpy.types.UILayout) -> None:
    """The last message in full: its first line, and every line when expanded (errors open by default)."""
    state = runtime()
    if state is None or not state.last_report:
        return
    level, _, message = state.last_report.partition(": ")
    lines = wrap(message)
    box = layout.box()
    row = box.row(align=True)
    if len(lines) > 1:
        expanded = state.show_report or level == "ERROR"
        row.prop(state, "show_report", text="", emboss=False, icon="DISCLOSURE_TRI_DOWN" if expanded
                 else "DISCLOSURE_TRI_RIGHT")
    else:
        expanded = True
    row.label(text=lines[0], icon=LEVEL_ICONS.get(level, "INFO"))
    if expanded:
        col = box.column(align=True)
        for line in lines[1:]:
            col.label(text=line)
    if level == "ERROR":
        feedback.draw_fixes(box.column(align=True), state.last_fix or feedback.LOG)


class _AtlasPanel(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "AtlasVAE"

    def panel_layout(self) -> bpy.types.UILayout:
        """The panel's layout (Blender sets it while drawing)."""
        layout = self.layout
        assert layout is not None
        return layout

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "atlasvae")


class VIEW3D_PT_atlasvae(_AtlasPanel):
    """The AtlasVAE tab: model choice and the common actions; the sections below are sub-panels."""

    bl_label = "AtlasVAE"
    bl_idname = "VIEW3D_PT_atlasvae"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        s = settings(context)
        row = layout.row(align=True)
        row.prop(s, "model", text="")
        row.operator("atlasvae.refresh_models", text="", icon="FILE_REFRESH")
        col = layout.column(align=True)
        col.scale_y = 1.3
        col.operator("atlasvae.sample", icon="OUTLINER_OB_POINTCLOUD")
        col.operator("atlasvae.reconstruct", icon="MOD_REMESH")
        _activity(layout)
        _last_report(layout)


def split_labels(layout: bpy.types.UILayout) -> None:
    """Labels in a column left of their fields, as in Blender's own panels (no cut-off labels)."""
    layout.use_property_split = True
    layout.use_property_decorate = False


class _AtlasSubPanel(_AtlasPanel):
    bl_parent_id = "VIEW3D_PT_atlasvae"


class VIEW3D_PT_atlasvae_model(_AtlasSubPanel):
    """The model's card, its folder, and the backend: status, device, log, start/restart/stop/release."""

    bl_label = "Model & Backend"
    bl_idname = "VIEW3D_PT_atlasvae_model"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        path = settings(context).model_path()
        card = layout.column(align=True)
        shown = runtime()
        for key, value in cached_model_card(path):
            if key == "Families" and shown is not None and ", " in value:
                names = value.split(", ")  # many: folded to their count until asked for
                card.prop(shown, "show_families", text=f"Families: {len(names)}", emboss=False,
                          icon="DISCLOSURE_TRI_DOWN" if shown.show_families else "DISCLOSURE_TRI_RIGHT")
                if not shown.show_families:
                    continue
                key = "   "
            for i, line in enumerate(wrap(f"{key}: {value}" if key.strip() else value)):
                card.label(text=line if i == 0 else f"   {line}")
        row = layout.row(align=True)
        row.operator("atlasvae.load_model", icon="IMPORT")
        row.operator("atlasvae.open_folder", text="", icon="FILE_FOLDER")
        state, text = backend_process.backend.status()
        running_on = (backend_process.backend.handshake or {}).get("device")
        box = layout.box()
        box.label(text=f"Backend: {state}", icon=STATUS_ICONS.get(state, "QUESTION"))
        col = box.column(align=True)
        for line in wrap(text):
            col.label(text=line)
        device = addon_settings().device
        col.label(text=f"Device: {device}" + (f" (running on {running_on})" if running_on else ""))
        row = layout.row(align=True)
        row.operator("atlasvae.backend_start", text="Start", icon="PLAY")
        row.operator("atlasvae.backend_restart", text="Restart", icon="FILE_REFRESH")
        row.operator("atlasvae.backend_stop", text="Stop", icon="PAUSE")
        row = layout.row(align=True)
        row.operator("atlasvae.release_memory", icon="TRASH")
        row.operator("atlasvae.open_log", text="Log", icon="TEXT")


class VIEW3D_PT_atlasvae_sample(_AtlasSubPanel):
    """Sample new shapes from the model."""

    bl_label = "Sample Shapes"
    bl_idname = "VIEW3D_PT_atlasvae_sample"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        split_labels(layout)
        s = settings(context)
        layout.prop(s, "family")
        layout.prop(s, "count")
        row = layout.row(align=True)
        row.prop(s, "seed")
        row.prop(s, "random_seed", text="", icon="FILE_REFRESH")
        layout.prop(s, "temperature")
        layout.prop(s, "size")
        _resolution(layout, s)
        layout.prop(s, "spacing")
        _look(layout, s)
        layout.operator("atlasvae.sample", icon="OUTLINER_OB_POINTCLOUD")


class VIEW3D_PT_atlasvae_reconstruct(_AtlasSubPanel):
    """Reconstruct the selected meshes through the model."""

    bl_label = "Reconstruct"
    bl_idname = "VIEW3D_PT_atlasvae_reconstruct"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        split_labels(layout)
        s = settings(context)
        layout.prop(s, "fit")
        _resolution(layout, s)
        _look(layout, s)
        count = len(selected_meshes(context))
        layout.label(text=f"{feedback.counted(count, 'mesh object')} selected")
        layout.operator("atlasvae.reconstruct", icon="MOD_REMESH")


class VIEW3D_PT_atlasvae_interpolate(_AtlasSubPanel):
    """Morph between two selected meshes."""

    bl_label = "Interpolate"
    bl_idname = "VIEW3D_PT_atlasvae_interpolate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        split_labels(layout)
        s = settings(context)
        layout.prop(s, "steps")
        layout.prop(s, "endpoint_fit")
        layout.prop(s, "as_shape_keys")
        objs = selected_meshes(context)
        if len(objs) == 2:
            layout.label(text=f"{objs[0].name} -> {objs[1].name}")
        else:
            layout.label(text="Select two meshes (the active one is the end)")
        layout.operator("atlasvae.interpolate", icon="IPO_LINEAR")


class VIEW3D_PT_atlasvae_variations(_AtlasSubPanel):
    """Random variations of the active mesh."""

    bl_label = "Variations"
    bl_idname = "VIEW3D_PT_atlasvae_variations"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        split_labels(layout)
        s = settings(context)
        layout.prop(s, "variation_count")
        layout.prop(s, "endpoint_fit")
        layout.prop(s, "spread")
        layout.prop(s, "variation_seed")
        layout.operator("atlasvae.variations", icon="MOD_PARTICLES")


def _unfinished(layout: bpy.types.UILayout, state: AtlasVAERuntime | None) -> None:
    """Fine-tunes that stopped before their last epoch (train_state.json), each with Resume (it goes on with
    the settings it recorded, up to its own epoch count); the one running now is left out."""
    running = Path(state.job_out) if state is not None and state.job_running() and state.job_out else None
    runs = [(folder, run) for folder, run in locate.unfinished_runs(locate.user_models_dir(addon_settings().user_dir))
            if folder != running]
    if not runs:
        return
    box = layout.box()
    box.label(text="Unfinished Fine-tunes", icon="RECOVER_LAST")
    for folder, run in runs:
        epochs = finetune.recorded_settings(run)[3]
        row = box.row(align=True)
        row.label(text=f"{folder.name}: epoch {run.get('epoch', 0)}/{epochs}")
        button = row.operator("atlasvae.finetune_start", text="Resume", icon="PLAY")
        if button is not None:
            button.name, button.epochs = folder.name, epochs


class VIEW3D_PT_atlasvae_finetune(_AtlasSubPanel):
    """Fine-tune on a folder of meshes, the selected objects or a collection, with progress."""

    bl_label = "Fine-tune"
    bl_idname = "VIEW3D_PT_atlasvae_finetune"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        split_labels(layout)
        s = settings(context)
        layout.prop(s, "finetune_source")
        if s.finetune_source == "FOLDER":
            layout.prop(s, "finetune_data")
        elif s.finetune_source == "COLLECTION":
            layout.prop(s, "finetune_collection")
        else:
            layout.label(text=f"{feedback.counted(len(selected_meshes(context)), 'mesh object')} selected")
        layout.prop(s, "finetune_epochs")
        layout.prop(s, "finetune_name")
        layout.label(text="Keep Fixed:")
        layout.row(align=True).prop(s, "finetune_freeze", expand=True)
        row = layout.row(align=True)
        out = locate.user_models_dir(addon_settings().user_dir) / s.finetune_name.strip()
        resume = bool(s.finetune_name.strip()) and finetune.unfinished(out)
        if resume:
            row.operator("atlasvae.finetune_start", text="Resume Fine-tune", icon="PLAY")
        else:
            row.operator("atlasvae.finetune_start", icon="PLAY")
        row.operator("atlasvae.finetune_cancel", text="Cancel", icon="CANCEL")
        state = runtime()
        _unfinished(layout, state)
        if state is None or not state.job_state:
            return
        text = f"{state.job_state}: epoch {state.epoch}/{state.epochs}"
        if state.loss:
            text += f", loss {state.loss:.4g}"
        if state.job_running() and state.eta_s > 0:
            text += f", ETA {_format_eta(state.eta_s)}"
        layout.progress(factor=float(state.progress), type="BAR", text=text)
        if state.job_message:
            col = layout.column(align=True)
            for line in wrap(state.job_message):
                col.label(text=line)


CLASSES = (VIEW3D_PT_atlasvae, VIEW3D_PT_atlasvae_model, VIEW3D_PT_atlasvae_sample, VIEW3D_PT_atlasvae_reconstruct,
           VIEW3D_PT_atlasvae_interpolate, VIEW3D_PT_atlasvae_variations, VIEW3D_PT_atlasvae_finetune)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    _card_cache.clear()
